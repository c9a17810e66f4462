"""What signing adds: the time to sign a model version at registration and to verify it on
load, next to the time of the whole load.

Run it in a project with a registered version (``opsloop quickstart --no-loop`` makes one)::

    python benchmarks/signing.py --project opsloop-quickstart [--uri models:/churn@champion]

The key is the project's (made on first use); folders are hashed in full each time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.context import use_project
from opsloop.registry import load_model, resolve_model_uri
from opsloop.registry.signing import project_keyring, project_trusted_keys
from opsloop.secops import sign_folder, verify_folder

if TYPE_CHECKING:
    from collections.abc import Callable


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up (imports, file cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    """Print the median sign, verify and load times of one version."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--uri", default="models:/churn@champion")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with use_project(args.project) as project:
        ref = resolve_model_uri(args.uri, store=project.store)
        assert not isinstance(ref, Path)
        key = project_keyring().signing_key()
        trusted = project_trusted_keys(project)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            project.artifacts.get_dir(ref.artifact_digest, folder)
            files = [p for p in folder.rglob("*") if p.is_file()]
            size = sum(p.stat().st_size for p in files)
            bundle = sign_folder(folder, key)
            sign_ms = _median_ms(lambda: sign_folder(folder, key), args.repeats)
            verify_ms = _median_ms(lambda: verify_folder(folder, bundle, trusted), args.repeats)
        load_ms = _median_ms(lambda: load_model(args.uri), args.repeats)
    print(f"{ref.uri}: {len(files)} files, {size / 1024:.1f} KiB")
    print(f"sign (at registration):      {sign_ms:8.1f} ms median of {args.repeats}")
    print(f"verify (on every load):      {verify_ms:8.1f} ms")
    print(f"load_model, verify included: {load_ms:8.1f} ms")


if __name__ == "__main__":
    main()
