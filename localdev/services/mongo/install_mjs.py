"""Obtaining mongo-java-server (H2 backend) and compiling localdev's launcher for it (MongoJavaServer.java).

The jars, pinned by Maven coordinates and sha256, in this order:
  1. the per-user cache (cache_dir("mongo-java-server", VERSION)/lib, complete when its `complete` file exists);
  2. each jar over HTTPS from the Maven repository (LOCALDEV_MAVEN_REPOSITORY, default Maven Central),
     checked against its pinned sha256 -- needs no Maven;
  3. `mvn dependency:copy-dependencies` on a generated pom (where Maven is installed and configured with
     a mirror), checked against the same digests.
The launcher is compiled with javac once per (launcher source, JVM) into the cache, packed into a jar (AppCDS
refuses a class directory on the class path), and an AppCDS class archive is recorded from a training run that
a real client drives through what namespaces do (SCRAM logins, users, writes, queries, an aggregation, a
database copy): a start then maps those classes instead of loading and verifying them, about half a cold
start's CPU (bench/up.py records each process's).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from localdev.services.install import ProvisionError, build_lock, cache_dir, download, progress, run, which
from localdev.services.java import JAVA_FIX, KEEP_OPEN_FILES_LIMIT, Java
from localdev.services.java import find_java as find

VERSION = "1.47.0"
MIN_JAVA = 17
DEFAULT_REPOSITORY = "https://repo.maven.apache.org/maven2"
LAUNCHER_SOURCE = Path(__file__).resolve().parent / "MongoJavaServer.java"
LAUNCHER_MAIN = "MongoJavaServer"
JVM_OPTIONS = ("-XX:+UseSerialGC", KEEP_OPEN_FILES_LIMIT,
               # slf4j-simple logs every connection and command at info: keep the log to warnings
               "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Djava.net.preferIPv4Stack=true")
# group:artifact:version -> sha256 of the jar; the h2 backend's whole runtime closure
JARS = (
    ("de.bwaldvogel:mongo-java-server-core:1.47.0", "9a34c9ad6ac6261906295481838256033ec1efc8c93a3e3828e5d47a006b0bd4"),
    ("de.bwaldvogel:mongo-java-server-h2-backend:1.47.0",
     "58ca6760a25f8a05adfe8a0f7a8a042ca22bd472869028755931507cdce20e71"),
    ("com.h2database:h2:2.3.232", "8dae62d22db8982c3dcb3826edb9c727c5d302063a67eef7d63d82de401f07d3"),
    ("io.netty:netty-buffer:4.2.2.Final", "4820eeb2d3db269b20b30711e3d7d21979664249aaf10fc67f90dee935810747"),
    ("io.netty:netty-codec:4.2.2.Final", "6a4ea3cedc831a377e20e32da5df4d2a47b954810e941138e3358e313db3a7f9"),
    ("io.netty:netty-codec-base:4.2.2.Final", "76987614ccb2fda7d3292b69ba5b61351f30e91bf5c7d8fa4b51bc32c9f67456"),
    ("io.netty:netty-codec-compression:4.2.2.Final",
     "005734e20aceb5e2c030033f7e042c81ee444497efd110cfca8de445642652ac"),
    ("io.netty:netty-codec-marshalling:4.2.2.Final",
     "ae8bb7a077ca02357c922e3abc1acf1bf191d5e2776721d69cbca50a16281096"),
    ("io.netty:netty-codec-protobuf:4.2.2.Final", "cfe0c7e6e68d83480a639b533eb7edaaf3252cfae8b73d0e362859673a4f9d97"),
    ("io.netty:netty-common:4.2.2.Final", "5d022f3acad74cb0f195f60213500a4000d1340e5e941edaf1a0e756686b9bae"),
    ("io.netty:netty-handler:4.2.2.Final", "d4ef582c78125457baa0cfa52992b5fb1bb9172d1a2c03b726e8b26e17d3fe2c"),
    ("io.netty:netty-resolver:4.2.2.Final", "fa7841ffe2e39d52251814fb8560d6936b10ae7c67453ee50426b83fd5170ba0"),
    ("io.netty:netty-transport:4.2.2.Final", "116d766a1af4722fe76a4cdaed969644985d44e08ec1337d2dbab697dd109603"),
    ("io.netty:netty-transport-native-unix-common:4.2.2.Final",
     "aa8821a7ea2ca47f62740bd1f37d67deb97824cc77e76dde6ae2c439a923fc9d"),
    ("org.slf4j:slf4j-api:2.0.17", "7b751d952061954d5abfed7181c1f645d336091b679891591d63329c622eb832"),
    ("org.slf4j:slf4j-simple:2.0.17", "ddfea59ac074c6d3e24ac2c38622d2d963895e17f70b38ed4bdae4d780be6964"),
)

def jar_name(coords: str) -> str:
    _, artifact, version = coords.split(":")
    return f"{artifact}-{version}.jar"


@dataclass(frozen=True)
class Install:
    java: str
    lib_dir: Path
    classes: Path  # the compiled launcher (the container image's copy)
    launcher: Path  # the same classes in a jar
    cds_archive: Path | None = None  # AppCDS archive, when one could be recorded (and was asked for)

    @property
    def classpath(self) -> str:
        return class_path(self.launcher, self.lib_dir)

    def jvm_options(self) -> tuple[str, ...]:
        return (f"-XX:SharedArchiveFile={self.cds_archive}",) if self.cds_archive else ()


def class_path(launcher: Path, lib_dir: Path) -> str:
    return os.pathsep.join([str(launcher)] + [str(lib_dir / jar_name(c)) for c, _ in JARS])


def find_java() -> Java:
    return find(f"mongo-java-server {VERSION}", MIN_JAVA)


def cached_lib() -> Path | None:
    lib = cache_dir("mongo-java-server", VERSION) / "lib"
    return lib if (lib / "complete").is_file() else None


def obtain_jars() -> Path:
    """The directory holding every pinned jar, fetching them into the cache once (concurrent callers wait)."""
    lib = cached_lib()
    if lib:
        return lib
    dest = cache_dir("mongo-java-server", VERSION)
    with build_lock(dest / "lib"):
        done = cached_lib()
        if done:
            return done
        errors = []
        for fetch in (_fetch_https, _fetch_maven):
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest))
            try:
                fetch(staging)
                _verify(staging)
                (staging / "complete").write_text(VERSION + "\n")
                shutil.rmtree(dest / "lib", ignore_errors=True)
                os.replace(staging, dest / "lib")
                return dest / "lib"
            except (ProvisionError, OSError) as exc:
                errors.append(f"{fetch.__doc__}: {exc}")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        listing = "\n  ".join(f"{c} (sha256 {d})" for c, d in JARS)
        raise ProvisionError(
            f"could not obtain mongo-java-server {VERSION}:\n  " + "\n  ".join(errors) +
            f"\nPut these jars in {dest / 'lib'} and create an empty file `complete` there:\n  {listing}")


def _fetch_https(staging: Path) -> None:
    """HTTPS from the Maven repository"""
    base = os.environ.get("LOCALDEV_MAVEN_REPOSITORY", DEFAULT_REPOSITORY).rstrip("/")
    progress(f"downloading mongo-java-server {VERSION} ({len(JARS)} jars)")
    for coords, _ in JARS:
        group, artifact, version = coords.split(":")
        url = f"{base}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
        download(url, staging / jar_name(coords), timeout=60)


def _fetch_maven(staging: Path) -> None:
    """mvn dependency:copy-dependencies"""
    mvn = which("mvn")
    if not mvn:
        raise ProvisionError("Maven (mvn) is not installed")
    deps = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>".format(
            *coords.split(":")) for coords, _ in JARS)
    (staging / "pom.xml").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>localdev</groupId><artifactId>mongo-java-server-jars</artifactId><version>1</version>"
        f"<dependencies>{deps}</dependencies></project>\n")
    progress(f"fetching mongo-java-server {VERSION} with Maven")
    run([mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
         "-DexcludeTransitive=true"], cwd=staging, what="mvn dependency:copy-dependencies", timeout=900)
    (staging / "pom.xml").unlink()


def _verify(staging: Path) -> None:
    for coords, digest in JARS:
        path = staging / jar_name(coords)
        if not path.is_file():
            raise ProvisionError(f"{coords}: {path.name} was not fetched")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != digest:
            raise ProvisionError(f"{coords}: sha256 {actual}, expected {digest}")


def provision(cds: bool = True) -> Install:
    """Jars, the compiled launcher and (`cds`) its class archive; idempotent, safe from concurrent processes."""
    jvm = find_java()
    java, javac, banner = jvm.java, jvm.javac, jvm.banner
    lib = obtain_jars()
    built_for = f"{VERSION} release {MIN_JAVA}".encode()  # javac --release: the image's JRE runs it too
    key = hashlib.sha256(LAUNCHER_SOURCE.read_bytes() + banner.encode() + built_for).hexdigest()[:16]
    out = cache_dir("mongo-java-server", "launch-" + key)
    classes = out / "classes"
    with build_lock(classes):
        if not (classes / f"{LAUNCHER_MAIN}.class").is_file():
            if not javac:
                raise ProvisionError("localdev compiles a small launcher for mongo-java-server and needs `javac` "
                                     f"(a JDK, not only a JRE): {JAVA_FIX}")
            progress("compiling the mongo-java-server launcher")
            tmp = Path(tempfile.mkdtemp(prefix=".classes-", dir=out))
            try:
                cp = os.pathsep.join(str(lib / jar_name(c)) for c, _ in JARS)
                run([javac, "-nowarn", "--release", str(MIN_JAVA), "-d", str(tmp), "-cp", cp, str(LAUNCHER_SOURCE)],
                    what="compiling localdev/services/mongo/MongoJavaServer.java")
                shutil.rmtree(classes, ignore_errors=True)
                os.replace(tmp, classes)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        launcher = out / "launcher.jar"
        if not launcher.is_file():
            _pack(classes, launcher)
        archive = out / "classes.jsa"
        if cds and not archive.is_file() and not (out / "cds-failed").is_file():
            _record_archive(java, class_path(launcher, lib), archive)
    return Install(java=java, lib_dir=lib, classes=classes, launcher=launcher,
                   cds_archive=archive if cds and archive.is_file() else None)


def _pack(classes: Path, launcher: Path) -> None:
    tmp = launcher.with_name(launcher.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for cls in sorted(classes.glob("*.class")):
            zf.write(cls, cls.name)
    os.replace(tmp, launcher)


def _record_archive(java: str, classpath: str, archive: Path) -> None:
    """A training run under -XX:ArchiveClassesAtExit, driven by pymongo; the archive is written when the JVM
    exits (our shutdown hook's SIGTERM path). A JVM that cannot record one leaves `cds-failed` beside it,
    saying why, and starts without an archive from then on."""
    import pymongo

    from localdev.ports import free_port

    progress("recording a class archive for a faster mongo-java-server start")
    tmp = archive.with_name(archive.name + ".tmp")
    tmp.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".training-", dir=archive.parent))
    port, password = free_port(), secrets.token_hex(16)
    argv = [java, *JVM_OPTIONS, f"-XX:ArchiveClassesAtExit={tmp}", "-cp", classpath, LAUNCHER_MAIN,
            "--host", "127.0.0.1", "--port", str(port), "--data", str(work / "mongo.mv.db"),
            "--users", str(work / "users"), "--cache-mb", "16"]
    env = {**os.environ, "LOCALDEV_MONGO_ROOT_USER": "localdev", "LOCALDEV_MONGO_ROOT_PASSWORD": password}
    log = work / "log"
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=work)
        try:
            _train(pymongo, port, password, proc)
        except Exception as exc:  # noqa: BLE001 - any failure: no archive, and the reason is kept
            proc.kill()
            proc.wait()
            _give_up(archive, f"the training run failed: {exc}\n{_tail(log)}")
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if tmp.is_file() and tmp.stat().st_size > 0 and proc.returncode in (0, 128 + signal.SIGTERM):
            os.replace(tmp, archive)
        else:
            _give_up(archive, f"the JVM wrote no class archive (exit {proc.returncode})\n{_tail(log)}")
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _train(pymongo, port: int, password: str, proc: subprocess.Popen) -> None:
    from localdev.waiting import poll_until

    client = pymongo.MongoClient(f"mongodb://localdev:{password}@127.0.0.1:{port}/?authSource=admin",
                                 serverSelectionTimeoutMS=500, connectTimeoutMS=500)

    def answers() -> bool:
        try:
            return client.admin.command("ping").get("ok") == 1
        except pymongo.errors.PyMongoError:
            return False

    with client:
        poll_until(answers, 60, "the training run's server", interval=0.05,
                   fail=lambda: None if proc.poll() is None else f"the server exited ({proc.returncode})")
        db = client["training"]
        db.command("createUser", "u", pwd=password, roles=[{"role": "readWrite", "db": "training"}])
        db.items.insert_many([{"_id": i, "k": i % 7, "tags": ["a", str(i)]} for i in range(200)])
        db.items.create_index("k")
        db.items.update_many({"k": 1}, {"$set": {"seen": True}})
        list(db.items.find({"k": {"$in": [1, 2]}}).sort("_id", -1).limit(5))
        list(db.items.aggregate([{"$match": {"k": {"$gte": 1}}}, {"$group": {"_id": "$k", "n": {"$sum": 1}}},
                                 {"$sort": {"_id": 1}}]))
        client.admin.command("localdevCopyDatabase", **{"from": "training", "to": "training_copy"})
        with pymongo.MongoClient(f"mongodb://u:{password}@127.0.0.1:{port}/training?authSource=training",
                                 serverSelectionTimeoutMS=5000) as user:
            user.training.items.count_documents({})
            user.training.items.delete_many({"k": 3})
        db.command("dropUser", "u")
        client.drop_database("training_copy")
        client.drop_database("training")


def _give_up(archive: Path, why: str) -> None:
    (archive.parent / "cds-failed").write_text(why)


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").strip().splitlines()[-10:])
    except OSError:
        return ""


DOCKERFILE = Path(__file__).resolve().parent / "Dockerfile"


def stage_image_context(dest: Path, base: str | None = None) -> Path:
    """A build context for the flavor's image: the Dockerfile, the pinned jars and the compiled launcher
    (javac targets Java 17, the image's JRE); `base` replaces the Dockerfile's default base image."""
    inst = provision()
    dest.mkdir(parents=True, exist_ok=True)
    dockerfile = DOCKERFILE.read_text()
    if base:
        dockerfile = dockerfile.replace("ARG BASE=debian:bookworm-slim", f"ARG BASE={base}")
    (dest / "Dockerfile").write_text(dockerfile)
    lib = dest / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir()
    for coords, _ in JARS:
        shutil.copy2(inst.lib_dir / jar_name(coords), lib / jar_name(coords))
    shutil.rmtree(dest / "classes", ignore_errors=True)
    shutil.copytree(inst.classes, dest / "classes")
    return dest


def missing_debian_packages() -> list[str]:
    return [] if which("javac") else ["default-jdk-headless"]

