"""`invoke TASK` at the repository root: the same tasks as the `fleetforge` command."""
from fleetforge.cli import task_collection

ns = task_collection()
