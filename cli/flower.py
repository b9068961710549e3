"""`billing flower`: Flower, the Celery monitor, for the platform's app.

Who may see it: with FLOWER_BASIC_AUTH set, everyone who knows a user:password pair, on any
address. Without it, only APP_ENV=development on a loopback address (a developer's own
machine); anywhere else the command refuses to start, because Flower shows every task's
arguments and can revoke tasks and shut workers down. (Without credentials Flower keeps its
own `/api/` closed too, unless FLOWER_UNAUTHENTICATED_API is set: its switch, left alone.)

Flower itself serves `/metrics` and `/healthcheck` without asking for credentials even when
basic auth is on (so that Prometheus and load balancers can reach them). They show task
names, counts and worker names, no task arguments; still, keep Flower's port off the public
internet and put TLS in front of it, since basic auth sends the password with every request.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from typing import NoReturn

import click

from core.settings import ConfigurationError, Settings, load_settings

DEFAULT_PORT = 5555
DEFAULT_ADDRESS = "127.0.0.1"


def parse_basic_auth(raw: str) -> tuple[str, ...]:
    """`user:password[,user2:password2]` as Flower's list of credentials; empty when unset.

    A malformed entry is named by its position only: its text may hold a password.
    """
    if not raw.strip():
        return ()
    credentials: list[str] = []
    for position, entry in enumerate(raw.split(","), start=1):
        user, colon, password = entry.strip().partition(":")
        if not (user and colon and password):
            raise ConfigurationError(
                "FLOWER_BASIC_AUTH must be user:password pairs separated by commas, each with "
                f"a non-empty user and password, and entry {position} is not."
            )
        credentials.append(f"{user}:{password}")
    return tuple(credentials)


def is_loopback(address: str) -> bool:
    """True for an address only this machine can reach; "" means every interface to Flower."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        # A host name (or ""): it may resolve to, or mean, an interface others can reach.
        return False


def check_exposure(settings: Settings, *, address: str, credentials: tuple[str, ...]) -> None:
    """Refuse (ConfigurationError, one sentence) a Flower that anyone could open unasked."""
    if credentials:
        return
    if settings.app_env != "development":
        raise ConfigurationError(
            f"FLOWER_BASIC_AUTH (user:password) must be set when APP_ENV={settings.app_env}."
        )
    if not is_loopback(address):
        shown = address or "every interface"
        raise ConfigurationError(
            f"FLOWER_BASIC_AUTH (user:password) must be set to serve Flower on {shown}; "
            "without it Flower runs only on 127.0.0.1 in development."
        )


def flower_argv(*, port: int, address: str, credentials: tuple[str, ...]) -> list[str]:
    """The `celery flower` arguments; every option that decides exposure is given explicitly,
    so that a stray FLOWER_ADDRESS or FLOWER_UNIX_SOCKET in the environment cannot override it."""
    argv = ["flower", f"--port={port}", f"--address={address}", "--unix_socket="]
    if credentials:
        # Validated above: no entry holds a comma, which is Flower's separator too.
        argv.append("--basic_auth=" + ",".join(credentials))
    return argv


def _refuse(message: str) -> NoReturn:
    click.echo(f"billing: configuration error: {message}", err=True)
    sys.exit(2)


@click.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--address",
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="The address to listen on; anything but loopback needs FLOWER_BASIC_AUTH.",
)
def flower(port: int, address: str) -> None:
    """Run Flower for the platform's Celery app, with basic auth from FLOWER_BASIC_AUTH."""
    try:
        settings = load_settings()
        credentials = parse_basic_auth(settings.flower_basic_auth)
        check_exposure(settings, address=address, credentials=credentials)
    except ConfigurationError as exc:
        _refuse(str(exc))

    from core.log_setup import configure_logging
    from tasks.celery_app import app as celery_app

    configure_logging(settings)
    # Flower reads FLOWER_* variables by itself, and would turn an empty FLOWER_BASIC_AUTH into
    # one empty credential that locks everyone out; the validated list goes on its command line
    # instead (inside this process: the password never shows in `ps`).
    os.environ.pop("FLOWER_BASIC_AUTH", None)
    # Logged, not echoed: with LOG_FORMAT=json every line of the output is one JSON object.
    log = logging.getLogger("billing.flower")
    if credentials:
        log.info(
            "Flower asks for a login; users: %s",
            ", ".join(c.partition(":")[0] for c in credentials),
        )
    else:
        log.warning("Flower without authentication on %s (development only)", address)
    # The app's broker_transport_options carry BROKER_KEY_PREFIX (global_keyprefix); Flower uses
    # them for its event receiver, its inspect calls and its queue lengths alike.
    celery_app.start(flower_argv(port=port, address=address, credentials=credentials))
