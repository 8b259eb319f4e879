"""Binaries and classpaths the stack needs, built or resolved once per machine into the shared cache."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from ccas import settings
from ccas.stack.process import StackError

log = logging.getLogger(__name__)

SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
BEAM_VERSION = "v2.73.0"
BUILD_SCRIPT = settings.REPO_ROOT / "scripts" / "build_tools.sh"
MAVEN_DIR = Path(__file__).resolve().parent / "maven"

_GO_BINARIES = {
    "weed": f"weed-{SEAWEEDFS_VERSION}",
    "prism": f"prism-{BEAM_VERSION}-loopback",  # Job API bound to 127.0.0.1 (scripts/build_tools.sh)
    "java_boot": f"beam-java-boot-{BEAM_VERSION}",
}


def cached_binary(target: str) -> Path:
    """Where the cache keeps a Go-built tool (it may not be built yet)."""
    return settings.cache_dir() / "bin" / _GO_BINARIES[target]


def go_binary(target: str) -> Path:
    """Path of a Go-built tool, building it with scripts/build_tools.sh when the cache lacks it."""
    path = cached_binary(target)
    if not path.exists():
        if shutil.which("go") is None:
            raise StackError(f"{path.name} is not in the cache and Go is not installed to build it")
        log.info("building %s into %s (once per machine)", target, path.parent)
        result = subprocess.run(["bash", str(BUILD_SCRIPT), target], check=False)
        if result.returncode != 0 or not path.exists():
            raise StackError(f"building {target} failed (exit {result.returncode}); see `bash {BUILD_SCRIPT} {target}`")
    return path


def maven_classpath(pom_name: str) -> Path:
    """A folder holding the runtime jars of ccas/stack/maven/<pom_name>, keyed by the pom's content."""
    pom = MAVEN_DIR / pom_name
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    libs = settings.cache_dir() / "maven" / f"{pom.stem}-{digest}"
    done_marker = libs / ".complete"
    if done_marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise StackError(f"the jars of {pom_name} are not in the cache and Maven (mvn) is not installed to resolve them")
    log.info("resolving %s with Maven into %s (once per machine)", pom_name, libs)
    partial = libs.with_name(libs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        "mvn", "-q", "-B", "-f", str(pom), f"-Dmaven.repo.local={settings.cache_dir() / 'm2'}",
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"Maven could not resolve {pom_name}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    done_marker.write_text(digest + "\n")
    return libs


def compiled_java(source: Path, classpath: Path) -> Path:
    """A jar of `source` compiled against the jars in `classpath`, cached by the source's content.

    A jar rather than a class folder: Beam stages each classpath entry of the expansion service for its workers and zips a folder
    into a new temporary file each time it does (one stray zip in /tmp per expansion); a jar is staged as it is.
    """
    digest = hashlib.sha256(source.read_bytes() + str(classpath).encode()).hexdigest()[:12]
    jar = settings.cache_dir() / "java" / f"{source.stem}-{digest}.jar"
    if jar.exists():
        return jar
    javac = shutil.which("javac")
    if javac is None:
        raise StackError(f"javac is not installed (a JDK is needed to compile {source.name})")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=jar.parent) as scratch:
        classes = Path(scratch) / "classes"
        result = subprocess.run([javac, "-d", str(classes), "-cp", f"{classpath}/*", str(source)], check=False,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"compiling {source.name} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        partial = Path(scratch) / jar.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
            for compiled in sorted(classes.rglob("*.class")):
                archive.write(compiled, compiled.relative_to(classes).as_posix())
        os.replace(partial, jar)
    return jar


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("java is not installed (Java 17 is needed for Kafka)")
    return java
