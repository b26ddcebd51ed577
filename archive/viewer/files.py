"""Serves the OHIF viewer's files (bundles, WebAssembly codecs, fonts) beside the site's
static files, from the same WhiteNoise middleware: same origin, gzip copies where the
browser accepts them, and cached for a year (the URL carries the viewer's version)."""

from whitenoise.middleware import WhiteNoiseMiddleware

from archive.viewer import install


class StaticAndViewerFilesMiddleware(WhiteNoiseMiddleware):
    def __init__(self, get_response=None):
        super().__init__(get_response)
        if install.installed():
            self.add_files(str(install.viewer_dir()), prefix=install.files_url().lstrip("/"))

    def immutable_file_test(self, path, url):
        return url.startswith(install.files_url()) or super().immutable_file_test(path, url)
