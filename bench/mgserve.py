"""``python -m bench.mgserve <entry> serve …``: run ``python -m <entry> serve …`` (normally
``minigate.cli``) in this process with the run's sandbox credentials.

minigate's sandbox credentials are the public constants of ``sandbox/credentials.py`` and
WeChat Pay RSA keys generated per process; ``minigate serve`` would instead keep a set in a
keys directory (``./minigate-data/sandbox-keys``) with secrets of its own. The load
generator signs notifications with the constants and the run's shared WeChat Pay keys
(``bench/wxkeys.py``), so those are swapped in before minigate reads them, and no keys
directory is created. This changes nothing else: same process, same settings, same code
paths.
"""

from __future__ import annotations

import runpy
import sys


def install_keys() -> None:
    from bench import wxkeys
    from minigate import app
    from minigate.sandbox import keystore

    keystore.sandbox_wechat_keys = wxkeys.keys  # type: ignore[attr-defined]
    app.for_keys_dir = lambda keys_dir: keystore.ephemeral_credentials()  # type: ignore[attr-defined]


def main(argv: list[str]) -> None:
    entry, rest = argv[0], argv[1:]
    install_keys()
    sys.argv = [entry, *rest]
    runpy.run_module(entry, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
