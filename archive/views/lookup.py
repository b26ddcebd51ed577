"""What the clinic's pages share: the study a URL names, or the page's 404."""

from django.http import Http404

from archive.errors import StudyNotFound
from archive.selectors.studies import study_get


def study_or_404(request, pk: int):
    """The request's clinic's study `pk`; another clinic's, or none, is a 404."""
    try:
        return study_get(tenant=request.tenant, pk=pk)
    except StudyNotFound:
        raise Http404("No such study") from None
