#!/bin/sh
# Build dist/relay: one self-contained executable (PyInstaller one-file) bundling the
# interpreter and every dependency. Run from anywhere; needs Python 3.11+ and network
# access to PyPI for the first run.
set -e
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e . pyinstaller
# --paths: the package is installed editable, which PyInstaller cannot follow.
# uvicorn picks its loop and protocols by name at run time: name them for the bundle.
.venv/bin/pyinstaller --onefile --clean --noconfirm --name relay \
    --distpath dist --workpath build/pyinstaller --specpath build \
    --paths . --collect-submodules relay --collect-data relay --copy-metadata relay \
    --hidden-import uvicorn.loops.uvloop \
    --hidden-import uvicorn.protocols.http.httptools_impl \
    --hidden-import uvicorn.lifespan.off \
    --collect-submodules asyncpg \
    deploy/relay_main.py
ls -l dist/relay
