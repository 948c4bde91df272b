"""Java check and the Apache Kafka distribution kafkabench runs and measures against.

A distribution is a folder of jars (`libs/`) for one Kafka version. It comes from, in order:
`KAFKA_HOME` (an unpacked Apache Kafka), the per-version cache under the kafkabench home,
Maven Central through `mvn` (broker, `kafka-tools` and a log4j2 backend), and the Apache
archive tarball. Each source that fails says why; if all fail, one `InstallError` lists them.

Beside it (never on the brokers' classpath) lives the Prometheus JMX exporter java agent,
`agent/jmx_prometheus_javaagent-<v>.jar`, fetched from Maven Central with Maven: the embedded
brokers serve their metrics through it. Without it they run without broker metrics.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs

from kafkabench import KAFKA_VERSION
from kafkabench.core.errors import InstallError

MIN_JAVA = 17
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
ARCHIVE_URL = "https://archive.apache.org/dist/kafka/{v}/kafka_{s}-{v}.tgz"
# Maven resolves ~90 jars (~55 MB) on a cold cache; ten minutes allows a slow mirror.
MAVEN_TIMEOUT_S = 600
JMX_AGENT_VERSION = "1.0.1"
JMX_AGENT_JAR = f"jmx_prometheus_javaagent-{JMX_AGENT_VERSION}.jar"
# One ~3 MB jar without dependencies: 2 minutes, not 10, before a cluster starts without it.
AGENT_TIMEOUT_S = 120
# After a failed agent fetch, clusters start without it for an hour instead of each paying
# for another failing mvn run (`install_kafka(retry_agent=True)` tries at once).
AGENT_RETRY_S = 3600
AGENT_FAILED = ".fetch-failed"

log = logging.getLogger(__name__)

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafkabench</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{version}</version></dependency>
    <!-- Kafka logs through slf4j 1.7; this binds it to log4j2, configured by log4j2.yaml. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_AGENT_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafkabench</groupId>
  <artifactId>jmx-agent</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.prometheus.jmx</groupId><artifactId>jmx_prometheus_javaagent</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.clients
        level: WARN
"""


def kafkabench_home() -> Path:
    """Folder for cached Kafka distributions and embedded clusters.

    Returns:
        `$KAFKABENCH_HOME` if set, else the user's cache dir (`~/.cache/kafkabench`).
    """
    env = os.environ.get("KAFKABENCH_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("kafkabench"))


@dataclass(frozen=True, slots=True)
class Java:
    """A Java runtime that can run Kafka."""

    path: str
    version: str

    @property
    def major(self) -> int:
        """Feature release number: 17 for "17.0.15", 8 for "1.8.0_392"."""
        return java_major(self.version)


def java_major(version: str) -> int:
    """Major version of a `java -version` string ("1.8.0_392" -> 8, "17.0.15" -> 17)."""
    parts = re.findall(r"\d+", version)
    if not parts:
        raise InstallError(f"cannot read a Java version from {version!r}")
    return int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])


def find_java() -> Java:
    """Find `java` (JAVA_HOME first, then PATH) and check it is 17 or newer.

    Returns:
        The Java runtime to start brokers and tools with.

    Raises:
        InstallError: no Java, or one older than 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    path = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if not path:
        raise InstallError(
            f"Java {MIN_JAVA}+ is needed to run Kafka and none was found on PATH "
            f"(or in JAVA_HOME). Install it, e.g. `apt-get install openjdk-{MIN_JAVA}-jdk-headless`."
        )
    try:
        out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"could not run {path} -version: {exc}") from exc
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    if not match:
        raise InstallError(f"{path} -version printed no version: {(out.stderr + out.stdout).strip()!r}")
    java = Java(path=path, version=match.group(1))
    if java.major < MIN_JAVA:
        raise InstallError(
            f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but {path} is Java {java.version}. "
            f"Install Java {MIN_JAVA} or newer and put it first on PATH (or set JAVA_HOME)."
        )
    return java


@dataclass(frozen=True, slots=True)
class KafkaDist:
    """An installed Kafka distribution: its jars and the Java that runs them."""

    version: str
    libs: Path
    source: str
    java: Java
    #: The Prometheus JMX exporter java agent jar, or None (brokers run without metrics).
    jmx_agent: Path | None = None

    def log4j_config(self, level: str = "INFO") -> Path:
        """A log4j2 config file with the given root level (brokers: INFO, tools: WARN)."""
        text = _LOG4J2.replace("level: INFO", f"level: {level}", 1)
        path = kafkabench_home() / f"log4j2-{level.lower()}.yaml"
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return path

    def java_command(self, main_class: str, *args: str, heap: str | None = None,
                     jvm_opts: tuple[str, ...] = ()) -> list[str]:
        """Command line running `main_class` from this distribution's jars.

        Args:
            main_class: e.g. "kafka.Kafka" or "org.apache.kafka.tools.ProducerPerformance".
            *args: arguments for the class.
            heap: max heap, e.g. "1g"; both -Xms and -Xmx when given.
            jvm_opts: extra JVM options.

        Returns:
            The argv list.
        """
        cmd = [self.java.path]
        if heap:
            cmd += [f"-Xms{heap}", f"-Xmx{heap}"]
        # Tools print their results on stdout, where INFO logging would bury them.
        level = "INFO" if main_class == "kafka.Kafka" else "WARN"
        cmd += [*jvm_opts, f"-Dlog4j2.configurationFile={self.log4j_config(level)}",
                "-cp", f"{self.libs}/*", main_class, *args]
        return cmd

    @property
    def size_bytes(self) -> int:
        """Size of the jars on disk."""
        return sum(p.stat().st_size for p in self.libs.glob("*.jar"))


def _dist_ok(libs: Path, version: str | None = None) -> bool:
    pattern = f"kafka_{SCALA_VERSION}-{version or '*'}.jar"
    return libs.is_dir() and any(libs.glob(pattern)) and any(libs.glob("kafka-tools-*.jar"))


def _from_kafka_home(kafka_home: str) -> Path:
    libs = Path(kafka_home).expanduser() / "libs"
    if not _dist_ok(libs):
        raise InstallError(
            f"KAFKA_HOME={kafka_home!r} is not an unpacked Apache Kafka distribution "
            f"(no libs/kafka_{SCALA_VERSION}-*.jar and kafka-tools-*.jar there). Point it at one, "
            f"or unset it to let kafkabench fetch Kafka {KAFKA_VERSION} itself."
        )
    return libs


def _from_maven(version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="kafkabench-dist-") as tmp:
        out_dir = Path(tmp) / "libs"
        proc = _mvn_copy(_POM.format(version=version, scala=SCALA_VERSION, log4j=LOG4J_VERSION),
                         out_dir, MAVEN_TIMEOUT_S)
        if proc.returncode != 0 or not _dist_ok(out_dir, version):
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            raise InstallError(f"mvn could not resolve org.apache.kafka:kafka_{SCALA_VERSION}:"
                               f"{version} (exit {proc.returncode}):\n{tail}")
        shutil.move(str(out_dir), target)


def _mvn_copy(pom: str, out_dir: Path, timeout_s: float, *extra: str) -> subprocess.CompletedProcess:
    """Run `mvn dependency:copy-dependencies` on `pom` into `out_dir`."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise InstallError("Maven (`mvn`) is not on PATH")
    with tempfile.TemporaryDirectory(prefix="kafkabench-mvn-") as tmp:
        (Path(tmp) / "pom.xml").write_text(pom)
        cmd = [mvn, "-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime",
               f"-DoutputDirectory={out_dir}", *extra]
        try:
            return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise InstallError(f"mvn did not finish within {timeout_s:g} s") from exc


def _agent_from_maven(version: str, target: Path) -> None:
    """Fetch the JMX exporter agent jar of `version` into the folder `target` (new)."""
    with tempfile.TemporaryDirectory(prefix="kafkabench-agent-") as tmp:
        out_dir = Path(tmp) / "agent"
        proc = _mvn_copy(_AGENT_POM.format(version=version), out_dir, AGENT_TIMEOUT_S,
                         "-DexcludeTransitive=true")
        jar = out_dir / f"jmx_prometheus_javaagent-{version}.jar"
        if proc.returncode != 0 or not jar.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            raise InstallError(f"mvn could not resolve io.prometheus.jmx:jmx_prometheus_javaagent:"
                               f"{version} (exit {proc.returncode}):\n{tail}")
        target.mkdir(parents=True)
        shutil.move(str(jar), target / jar.name)


def install_jmx_agent(folder: Path, *, quiet: bool = False, retry: bool = False) -> Path | None:
    """The Prometheus JMX exporter java agent in `folder`, fetched with Maven if missing.

    Never raises: a failed fetch is a logged warning and None (brokers then run without
    broker metrics), remembered for `AGENT_RETRY_S` so that every cluster start does not
    run a failing Maven again.

    Args:
        folder: where the jar lives, e.g. `<kafka home>/agent` (not the brokers' `libs/`).
        quiet: do not print progress to stderr.
        retry: try again now even after a recent failure.

    Returns:
        The jar, or None when it could not be fetched.
    """
    jar = folder / JMX_AGENT_JAR
    if jar.is_file():
        return jar
    failed = folder / AGENT_FAILED
    try:
        recent = not retry and time.time() - failed.stat().st_mtime < AGENT_RETRY_S
    except OSError:
        recent = False
    if recent:
        log.debug("no JMX exporter agent: its fetch failed less than %d s ago", AGENT_RETRY_S)
        return None
    if not quiet:
        print(f"kafkabench: fetching the Prometheus JMX exporter agent {JMX_AGENT_VERSION} "
              "from Maven Central via mvn ...", file=sys.stderr)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _agent_from_maven(JMX_AGENT_VERSION, partial)
        folder.mkdir(parents=True, exist_ok=True)
        (partial / JMX_AGENT_JAR).replace(jar)
    except (InstallError, OSError) as exc:
        log.warning("brokers run without broker metrics: could not fetch "
                    "io.prometheus.jmx:jmx_prometheus_javaagent:%s: %s. Install Maven with access "
                    "to Maven Central, or put %s into %s", JMX_AGENT_VERSION, exc, JMX_AGENT_JAR, folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            failed.write_text(f"{exc}\n")
        except OSError:
            pass
        return None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    failed.unlink(missing_ok=True)
    return jar


def _from_archive(version: str, target: Path) -> None:
    url = ARCHIVE_URL.format(v=version, s=SCALA_VERSION)
    with tempfile.TemporaryDirectory(prefix="kafkabench-dl-") as tmp:
        tgz = Path(tmp) / "kafka.tgz"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp, open(tgz, "wb") as f:
                shutil.copyfileobj(resp, f)
        except OSError as exc:
            raise InstallError(f"download of {url} failed: {exc}") from exc
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if "/libs/" in m.name and m.isfile()]
            tar.extractall(tmp, members=members, filter="data")
        libs = next(Path(tmp).glob("kafka_*/libs"))
        shutil.move(str(libs), target)


def install_kafka(version: str = KAFKA_VERSION, *, quiet: bool = False,
                  retry_agent: bool = False) -> KafkaDist:
    """Return an installed Kafka distribution, fetching it on first use.

    The JMX exporter agent is fetched too, also for a distribution installed before
    kafkabench used it (Kafka itself is not fetched again); if that fails, the distribution's
    `jmx_agent` is None and a warning says so (see `install_jmx_agent`).

    Args:
        version: Apache Kafka version; the pinned `KAFKA_VERSION` by default.
        quiet: do not print progress to stderr.
        retry_agent: fetch the agent now even if a fetch failed within the last hour
            (`kafkabench kafka install`).

    Returns:
        The distribution.

    Raises:
        InstallError: Java missing or too old, KAFKA_HOME invalid, or every source failed.
    """
    dist = _install_kafka(version, quiet=quiet)
    # A user's KAFKA_HOME is theirs: the agent goes to kafkabench's home instead.
    folder = (kafkabench_home() if dist.version == "KAFKA_HOME" else dist.libs.parent) / "agent"
    return replace(dist, jmx_agent=install_jmx_agent(folder, quiet=quiet, retry=retry_agent))


def _install_kafka(version: str, *, quiet: bool) -> KafkaDist:
    java = find_java()
    if kafka_home := os.environ.get("KAFKA_HOME"):
        return KafkaDist(version="KAFKA_HOME", libs=_from_kafka_home(kafka_home),
                         source=f"KAFKA_HOME={kafka_home}", java=java)
    cache = kafkabench_home() / "kafka" / version
    libs = cache / "libs"
    if _dist_ok(libs, version):
        return KafkaDist(version=version, libs=libs, source=f"cache {cache}", java=java)

    cache.mkdir(parents=True, exist_ok=True)
    failures = []
    for name, fetch in (("Maven Central via mvn", _from_maven),
                        ("Apache archive download", _from_archive)):
        if not quiet:
            print(f"kafkabench: fetching Apache Kafka {version} from {name} ...", file=sys.stderr)
        # Fetch beside the cache and rename, so an interrupted fetch never looks installed.
        partial = cache / f"libs.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            fetch(version, partial)
        except (InstallError, OSError, tarfile.TarError, StopIteration) as exc:
            failures.append(f"- {name}: {exc}")
            shutil.rmtree(partial, ignore_errors=True)
            continue
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        return KafkaDist(version=version, libs=libs, source=name, java=java)
    raise InstallError(
        f"could not install Apache Kafka {version}. Tried:\n" + "\n".join(failures) +
        "\nWhat you can do: install Maven (`apt-get install maven`) with access to Maven Central, "
        "or unpack an Apache Kafka 4.x distribution and set KAFKA_HOME to it."
    )
