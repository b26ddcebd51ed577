"""The viewer's HTML page and configuration, made per request from the installed OHIF
build: its page loads our configuration script (not the build's demo one) and its files
from our own origin, with no inline script, so the site's script policy still holds."""

import json
import re
from functools import cache

from archive.viewer import install

_INLINE_SCRIPT = re.compile(r"<script>.*?</script>", re.S)
_CONFIG_SCRIPT = re.compile(r'<script[^>]*src="/app-config\.js"[^>]*></script>')
_SERVICE_WORKER = re.compile(r'<script[^>]*src="/init-service-worker\.js"[^>]*></script>')
_ROOT_URL = re.compile(r'(src|href)="/(?!/)')
_TITLE = re.compile(r"<title>.*?</title>", re.S)
CONFIG_MARK = "<!--cloudpacs-config-->"


@cache
def _template(version: str) -> str:
    html = (install.viewer_dir() / "index.html").read_text()
    # The build's two inline scripts set PUBLIC_URL and define browserImportFunction; our
    # configuration script does both (config_script below).
    html = _INLINE_SCRIPT.sub("", html)
    html = _SERVICE_WORKER.sub("", html)
    if not _CONFIG_SCRIPT.search(html):
        raise RuntimeError("the viewer's index.html no longer loads /app-config.js: check the OHIF upgrade")
    html = _CONFIG_SCRIPT.sub(CONFIG_MARK, html)
    html = _ROOT_URL.sub(lambda m: f'{m.group(1)}="{install.files_url()}', html)
    return _TITLE.sub("<title>CloudPACS viewer</title>", html)


def index_html(config_url: str, extra_scripts: str = "") -> str:
    """`extra_scripts`: our own script tags (made by our templates) to load after the
    configuration, such as the automatic logoff's countdown."""
    from django.utils.html import escape

    return _template(install.version()).replace(
        CONFIG_MARK, f'<script src="{escape(config_url)}"></script>{extra_scripts}')


def ohif_config(*, router_basename: str, dicomweb_root: str, name: str, show_study_list: bool) -> dict:
    """OHIF's window.config for one DICOMweb root (a clinic's, or a share's)."""
    return {
        "routerBasename": router_basename,
        "showStudyList": show_study_list,
        "extensions": [],
        "modes": [],
        # No onboarding tour: a clinic's readers open the viewer many times a day.
        "customizationService": [{"ohif.tours": {"$set": []}}],
        "maxNumberOfWebWorkers": 3,
        "showLoadingIndicator": True,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "strictZSpacingForVolumeViewport": True,
        # The "investigational use" notice is for OHIF's public demo, not a clinic's archive.
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "defaultDataSourceName": "cloudpacs",
        "dataSources": [{
            "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
            "sourceName": "cloudpacs",
            "configuration": {
                "friendlyName": name,
                "name": "cloudpacs",
                # Same origin: the browser sends the session cookie; no token in any URL.
                "wadoUriRoot": dicomweb_root,
                "qidoRoot": dicomweb_root,
                "wadoRoot": dicomweb_root,
                "qidoSupportsIncludeField": True,
                "supportsReject": False,
                "imageRendering": "wadors",
                # The series panel's thumbnails are the server's JPEGs (<img>, the session
                # cookie): with "wadors" the browser fetched, decoded and drew a frame per
                # series in WebGL, beside the first image it is trying to show.
                "thumbnailRendering": "thumbnailDirect",
                "enableStudyLazyLoad": True,
                "supportsFuzzyMatching": True,
                "supportsWildcard": True,
                "staticWado": False,
                "singlepart": "bulkdata,video",
                "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                "omitQuotationForMultipartRequest": True,
            },
        }],
    }


def _js(value) -> str:
    # json.dumps escapes nothing HTML-special, but this is a script file of its own (never
    # inlined in a page), served as JavaScript; "</" is escaped anyway.
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def config_script(config: dict, *, back_url: str, back_label: str) -> str:
    """The configuration script. In OHIF's header, in place of its logo, a link back to
    where the viewer was opened from (the worklist, or a share's page)."""
    return (f"window.PUBLIC_URL = {_js(install.files_url())};\n"
            "window.browserImportFunction = function (n) { return import(n); };\n"
            f"window.config = {_js(config)};\n"
            "window.config.whiteLabeling = { createLogoComponentFn: function (React) {\n"
            f"  return React.createElement('a', {{ href: {_js(back_url)}, className: 'text-primary',\n"
            "    style: { fontWeight: 600, whiteSpace: 'nowrap', fontSize: '15px' } },"
            f" {_js(back_label)});\n}} }};\n")
