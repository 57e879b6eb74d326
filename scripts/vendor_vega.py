"""Write .dvc/plots_offline.html: the page `dvc plots show` fills, with Vega, Vega-Lite and Vega-Embed
inlined, so the plots render on a machine without internet (DVC's own page loads them from a CDN).

The versions are the ones the installed dvc-render names in its CDN script tags, so the specs it writes
match the library that draws them. The JavaScript comes from the npm registry (`npm pack`), the
licences (BSD-3-Clause) go into the page beside it. `.dvc/config` points `plots.html_template` at it.

    .venv/bin/python scripts/vendor_vega.py        # needs npm; rerun after upgrading dvc-render
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".dvc" / "plots_offline.html"
# package → the built file the browser needs, inside the npm tarball
BUILDS = {"vega": "package/build/vega.min.js", "vega-lite": "package/build/vega-lite.min.js",
          "vega-embed": "package/build/vega-embed.min.js"}
BUNDLED = ("vega-embed's build also bundles fast-json-patch (MIT), json-stringify-pretty-compact (MIT), semver (ISC), "
           "tslib (0BSD), vega-themes, vega-tooltip and vega-schema-url-parser (BSD-3-Clause).")

PAGE = """<!DOCTYPE html>
<!--
  The page `dvc plots show` fills with its plots; written by scripts/vendor_vega.py. Vega, Vega-Lite and
  Vega-Embed are inlined (no CDN), so it renders offline. {versions}.
  {bundled}

{licences}
-->
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def cdn_versions() -> dict[str, str]:
    """package → version, read from the script tags dvc-render would put on the page."""
    from dvc_render.vega import VegaRenderer

    found = dict(re.findall(r"/npm/(vega(?:-lite|-embed)?)@([0-9][^\"/]*)", VegaRenderer.SCRIPTS))
    missing = set(BUILDS) - set(found)
    if missing:
        raise SystemExit(f"dvc-render's VegaRenderer.SCRIPTS names no version of {sorted(missing)}: {VegaRenderer.SCRIPTS}")
    return {name: found[name] for name in BUILDS}


def fetch(name: str, version: str, into: Path) -> tuple[str, str]:
    """(built JavaScript, licence text) of one npm package."""
    done = subprocess.run(["npm", "pack", "--silent", f"{name}@{version}"], cwd=into, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"npm pack {name}@{version} failed: {done.stderr.strip()}")
    with tarfile.open(into / done.stdout.strip().splitlines()[-1]) as tar:
        script = tar.extractfile(BUILDS[name]).read().decode()
        licence = tar.extractfile("package/LICENSE").read().decode()
    if "</script" in script.lower() or re.search(r"\{(scripts|plot_divs|refresh_tag)\}", script):
        raise SystemExit(f"{name}@{version}: its build holds '</script' or a dvc-render placeholder; cannot inline it")
    return script, licence


def main() -> int:
    versions = cdn_versions()
    scripts, licences = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in versions.items():
            script, licence = fetch(name, version, Path(tmp))
            scripts.append(f"    <script>/* {name} {version}, BSD-3-Clause */\n{script}\n    </script>")
            licences.append(f"  {name} {version}:\n" + "\n".join("    " + line for line in licence.replace("--", "- -").splitlines()))
    page = PAGE.format(versions=", ".join(f"{n} {v}" for n, v in versions.items()), bundled=BUNDLED,
                       licences="\n\n".join(licences), scripts="\n".join(scripts))
    OUT.write_text(page, encoding="utf8")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1e6:.2f} MB): {versions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
