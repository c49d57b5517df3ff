"""``python -m bench.mgserve <entry> serve …``: run ``python -m <entry> serve …`` (normally
``minigate.cli``) in this process with the run's shared WeChat Pay sandbox keys.

minigate generates its sandbox WeChat keys per process; the load generator must sign
notifications with the same keys, so they are swapped in before minigate reads them. This
changes nothing else: same process, same settings, same code paths.
"""

from __future__ import annotations

import runpy
import sys


def install_keys() -> None:
    from bench import wxkeys
    from minigate import app
    from minigate.sandbox import credentials, wechat_keys, world

    for module in (wechat_keys, credentials, world, app):
        module.sandbox_wechat_keys = wxkeys.keys  # type: ignore[attr-defined]


def main(argv: list[str]) -> None:
    entry, rest = argv[0], argv[1:]
    install_keys()
    sys.argv = [entry, *rest]
    runpy.run_module(entry, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
