"""Entry point of the ``irqlab`` command: option parsing and error reporting.

User errors (:class:`~irqlab.errors.ScenarioError`) print as
``file:line:col: error: ...`` with the source line and a caret, and exit with
status 2. Anything else is an internal error (status 1). The Python traceback
is shown only with ``--debug`` or ``IRQLAB_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from irqlab import __version__
from irqlab.errors import ScenarioError, with_disk_sources

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1


class State:
    debug = False
    argv: list[str] = []  # the arguments main() was given (for errors located on them)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="irqlab")
@click.option("--debug", is_flag=True, envvar="IRQLAB_DEBUG",
              help="Show Python tracebacks (also IRQLAB_DEBUG=1).")
def cli(debug: bool) -> None:
    """Model, sweep and explain interrupt storms in virtualized x86 machines."""
    State.debug = debug


def fail(message: str) -> "click.exceptions.Exit":
    """Print ``irqlab: error: message`` and leave with the user-error status."""
    click.echo(f"irqlab: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_USER_ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (also used by tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    State.argv = args
    debug = "--debug" in args or os.environ.get("IRQLAB_DEBUG", "") not in ("", "0")
    try:
        rv = cli.main(args=args, prog_name="irqlab", standalone_mode=False)
        # without standalone mode, click returns (not raises) a command's Exit status
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("irqlab: interrupted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return EXIT_USER_ERROR
    except ScenarioError as e:
        if debug:
            traceback.print_exc()
        click.echo(with_disk_sources(e).format(), err=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        click.echo("irqlab: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        if e.filename is None:
            return _internal(e, debug)
        if debug:
            traceback.print_exc()
        click.echo(f"error: cannot use '{e.filename}': {e.strerror or type(e).__name__}", err=True)
        return EXIT_USER_ERROR
    except Exception as e:  # noqa: BLE001 - the last line of defence
        return _internal(e, debug)


def _internal(e: Exception, debug: bool) -> int:
    """Anything that is not the user's input: report it as irqlab's own error."""
    if debug:
        traceback.print_exc()
    click.echo(f"irqlab: internal error: {type(e).__name__}: {e}", err=True)
    click.echo("  (run with --debug for the traceback; please report it)", err=True)
    return EXIT_INTERNAL


def _register() -> None:
    for name in ("lang", "sim", "sweep", "store", "plugins", "expectations"):
        try:
            __import__(f"irqlab.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"irqlab.cli.{name}":
                raise


_register()


def entry() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
