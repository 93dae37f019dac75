"""The web editor: :class:`.editor.Editor` (state and renders) served by :func:`.app.create_app` (FastAPI)."""

from ganslim.editing.web.app import bind, create_app, serving_in_thread, uvicorn_server
from ganslim.editing.web.editor import Editor, RenderConfig

__all__ = ["Editor", "RenderConfig", "bind", "create_app", "serving_in_thread", "uvicorn_server"]
