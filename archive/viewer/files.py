"""Serves the OHIF viewer's files (bundles, WebAssembly codecs, fonts) beside the site's
static files, from the same WhiteNoise middleware: same origin, gzip copies where the
browser accepts them, and cached for a year (the URL carries the viewer's version)."""

import os

from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware

from archive.viewer import install


class StaticAndViewerFilesMiddleware(WhiteNoiseMiddleware):
    def __init__(self, get_response=None):
        super().__init__(get_response)
        if install.installed():
            self.add_files(str(install.viewer_dir()), prefix=install.files_url().lstrip("/"))

    def add_files(self, root, prefix=None):
        # STATIC_ROOT exists where collectstatic ran (the Docker image); `make run` and the
        # tests serve the same files through the finders (WHITENOISE_USE_FINDERS), so a
        # missing folder there is expected, not worth a warning on every start.
        if os.path.normpath(root) == os.path.normpath(settings.STATIC_ROOT) and not os.path.isdir(root):
            return
        super().add_files(root, prefix)

    def immutable_file_test(self, path, url):
        return url.startswith(install.files_url()) or super().immutable_file_test(path, url)
