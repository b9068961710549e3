"""What the Celery side derives from `billing.registry`, the one list of handled types: the
task name of each (`stripe.<type>`). The same dict is re-exported, so a test that puts a
handler in it is seen by the tasks."""

from __future__ import annotations

from billing.registry import HANDLERS, Handler, is_handled
from core.task_names import event_task_name as task_name

__all__ = ["HANDLERS", "Handler", "is_handled", "task_name"]
