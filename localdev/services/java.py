"""Finding the JVM that the Java-based services (DynamoDB Local, mongo-java-server) run on."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from localdev.services.install import ProvisionError, which

JAVA_FIX = ("install a Java 17+ JDK (Debian/Ubuntu: `apt-get install default-jdk-headless`; "
            "macOS: `brew install openjdk@17`) or point JAVA_HOME at one")
# HotSpot raises its open-files limit to the hard limit: that is not the limit the user gave, and it hides an fd
# leak until the machine's own limit is reached. Every Java service keeps the user's.
KEEP_OPEN_FILES_LIMIT = "-XX:-MaxFDLimit"


@dataclass(frozen=True)
class Java:
    java: str
    javac: str | None  # None with a JRE only: the launchers cannot be compiled then
    version: int
    banner: str  # `java -version` output: part of a build's cache key (class archives are per JVM build)


def find_java(who: str, min_version: int = 17) -> Java:
    """The JVM to run `who` with (JAVA_HOME first, then PATH); ProvisionError saying how to get one."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home, "bin", "java")) if home and Path(home, "bin", "java").exists() else which("java")
    if not java:
        raise ProvisionError(f"{who} needs Java, and no `java` was found: {JAVA_FIX}")
    javac_path = Path(java).resolve().parent / "javac"
    javac = str(javac_path) if javac_path.exists() else which("javac")
    try:
        st = os.stat(java)
        out = _version_banner(java, st.st_mtime_ns, st.st_size)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"could not run {java} -version ({exc}): {JAVA_FIX}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise ProvisionError(f"could not read the Java version from `{java} -version`: {out.strip()[:200]}")
    major = int(match.group(1))
    if major == 1:  # "1.8.0_x" style
        major = int(match.group(2) or 0)
    if major < min_version:
        raise ProvisionError(f"{who} needs Java {min_version} or newer, found Java {major} at {java}: {JAVA_FIX}")
    return Java(java=java, javac=javac, version=major, banner=out.strip())


@lru_cache(maxsize=8)
def _version_banner(java: str, mtime_ns: int, size: int) -> str:
    """`java -version`'s output, once per JVM binary in a process: `up` asks for it for each Java service, and
    each ask started a JVM on the path of that service's start."""
    return subprocess.run([java, "-version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=30).stdout
