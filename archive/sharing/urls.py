"""The clinic's sharing pages and API, included under /t/<slug>/ in the archive namespace."""

from django.urls import path

from archive.sharing import api, views

urlpatterns = [
    path("studies/<int:pk>/share/", views.share_new, name="share_new"),
    path("shares/", views.share_list, name="shares"),
    path("shares/<int:share_id>/revoke/", views.share_revoke, name="share_revoke"),
    path("shares/<int:share_id>/extend/", views.share_extend, name="share_extend"),
    path("api/shares", api.ShareListView.as_view(), name="api_shares"),
    path("api/shares/<int:share_id>", api.ShareDetailView.as_view(), name="api_share"),
]
