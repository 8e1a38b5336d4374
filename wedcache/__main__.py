"""``python -m wedcache …`` is the ``wedcache`` command (:mod:`wedcache.cli`)."""
from .cli import app

app(prog_name="wedcache")
