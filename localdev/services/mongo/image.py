"""Stages the build context of the mongo-java-server flavor's container image (localdev/services/mongo/Dockerfile)
from the pinned jars and the launcher localdev compiles for the native runtime:

    python -m localdev.services.mongo.image --image-context ctx
    docker build -t localhost/localdev-mongo-java-server:1.47.0 ctx
"""

from __future__ import annotations

from pathlib import Path

from localdev.services.mongo import install_mjs


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m localdev.services.mongo.image",
                                     description="Obtain mongo-java-server and compile localdev's launcher; "
                                                 "with --image-context, stage the build context of its image.")
    parser.add_argument("--image-context", metavar="DIR", help="write the Dockerfile, jars and launcher here")
    parser.add_argument("--base", help="the Debian 12 base image (default: the Dockerfile's)")
    args = parser.parse_args(argv)
    try:
        if args.image_context:
            print(install_mjs.stage_image_context(Path(args.image_context), args.base))
        else:
            print(install_mjs.provision().classes)
    except (install_mjs.ProvisionError, OSError) as exc:
        print(f"localdev: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
