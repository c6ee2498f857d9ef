from ._app.cli import run

run()
