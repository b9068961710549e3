"""`billing up`: the whole platform on one machine (the command is in `command`).

`plan` decides ports, secret and defaults (`ports`, `state`, `environment`); `command` starts
the embedded servers, the mail sink and the platform, waits for them (`readiness`) and prints
where everything is (`summary`).
"""

from cli.up.command import up
from cli.up.errors import UpError

__all__ = ["UpError", "up"]
