#!/usr/bin/env bash
# Prepares Apache Spark + Iceberg for the Spark engine suite and prints on stdout the
# comma-separated jars for `spark.jars`:
#   iceberg-spark-runtime jar, iceberg-spark-extensions jar, and a jar of relocated dependencies.
#
# Why the third jar: the Iceberg runtime jar shipped in the `snowpark-connect-deps-iceberg` wheel
# lacks its shaded Jackson and httpclient5 classes, so a `type=rest` catalog fails with
# NoClassDefFoundError .../shaded/org/apache/hc/core5/http/Method. We rebuild them from Debian's
# httpclient5/httpcore5 jars and pyspark's own Jackson 2 jars, relocated with Debian's jarjar to
# the packages the runtime jar expects, plus a stub of the httpclient 5.4 interface
# org.apache.hc.client5.http.ssl.TlsSocketStrategy (only used on Iceberg's custom-TLS path).
# See shared/reference/clients.md (Spark row).
#
# Idempotent: Debian packages are installed only when missing (a JDK, libhttpclient5-java,
# libhttpcore5-java, libjarjar-java, libasm-java, unzip); the jar is built once into
#   ${FLOE_CI_CACHE:-$HOME/.cache/floe-ci}/spark-deps/<key>/
# with <key> made of the versions it is built from. Progress goes to stderr; any failure exits
# non-zero.
#
# The Python with pyspark and snowpark-connect-deps-iceberg installed is $PYTHON (default:
# python3 on PATH).
set -euo pipefail

say() { echo "spark/prepare: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Bump when the recipe below changes, so cached jars are rebuilt.
RECIPE=1
PYTHON="${PYTHON:-python3}"
cache="${FLOE_CI_CACHE:-$HOME/.cache/floe-ci}"

# --- Debian packages ---------------------------------------------------------------------------
apt_updated=0
apt_install() { # PACKAGE...
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: $*"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
    say "apt-get install $*"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2 \
        || die "apt-get install $* failed"
}

installed() { # PACKAGE
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1 \
    || ! command -v jar >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless openjdk-17-jdk-headless
fi
for tool in java javac jar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after installing the JDK"
done

missing=()
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
for pkg in libhttpclient5-java libhttpcore5-java libjarjar-java libasm-java; do
    installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# --- Inputs ------------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "no Python at PYTHON=$PYTHON"
jar_dirs=$("$PYTHON" - <<'EOF'
import importlib.util, os, sys
def jars_of(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"python package {name} is not installed in {sys.executable}")
    return os.path.join(list(spec.submodule_search_locations)[0], "jars")
print(jars_of("pyspark"))
print(jars_of("snowpark_connect_deps_iceberg"))
EOF
) || die "cannot find pyspark / snowpark_connect_deps_iceberg with $PYTHON (install tests/engines/requirements.txt)"
pyspark_jars=$(sed -n 1p <<<"$jar_dirs")
iceberg_jars=$(sed -n 2p <<<"$jar_dirs")

one() { # GLOB DESCRIPTION: the single existing file matching GLOB
    local matches=()
    for f in $1; do [ -f "$f" ] && matches+=("$f"); done
    [ "${#matches[@]}" -eq 1 ] || die "expected exactly one $2 ($1), found ${#matches[@]}"
    echo "${matches[0]}"
}

runtime_jar=$(one "$iceberg_jars/iceberg-spark-runtime-3.5_2.12-*.jar" "Iceberg Spark runtime jar")
extensions_jar=$(one "$iceberg_jars/iceberg-spark-extensions-3.5_2.12-*.jar" "Iceberg Spark extensions jar")
jackson_core=$(one "$pyspark_jars/jackson-core-2.*.jar" "jackson-core 2 jar in pyspark")
jackson_databind=$(one "$pyspark_jars/jackson-databind-2.*.jar" "jackson-databind 2 jar in pyspark")
jackson_annotations=$(one "$pyspark_jars/jackson-annotations-2.*.jar" "jackson-annotations 2 jar in pyspark")
# Arrow's ObjectMapperFactory in the runtime jar also references the shaded JavaTimeModule.
jackson_jsr310=$(one "$pyspark_jars/jackson-datatype-jsr310-2.*.jar" "jackson-datatype-jsr310 2 jar in pyspark")

# Debian's jars, found through the package file lists (versioned names first).
deb_jar() { # PACKAGE PATTERN
    local f
    f=$(dpkg -L "$1" | grep -E "/usr/share/java/$2-[0-9][^/]*\.jar$" | head -n1 || true)
    [ -n "$f" ] || f=$(dpkg -L "$1" | grep -E "/usr/share/java/$2\.jar$" | head -n1 || true)
    [ -n "$f" ] && [ -f "$f" ] || die "no $2 jar in Debian package $1"
    echo "$f"
}
httpclient5=$(deb_jar libhttpclient5-java httpclient5)
httpcore5=$(deb_jar libhttpcore5-java httpcore5)
httpcore5_h2=$(dpkg -L libhttpcore5-java | grep -E '/usr/share/java/httpcore5-h2(-[0-9][^/]*)?\.jar$' | head -n1 || true)
jarjar=$(deb_jar libjarjar-java jarjar)

iceberg_version=$(basename "$runtime_jar" .jar); iceberg_version=${iceberg_version##*-}
jackson_version=$(basename "$jackson_databind" .jar); jackson_version=${jackson_version##*-}
hc_version=$(dpkg-query -W -f='${Version}' libhttpclient5-java)
hcore_version=$(dpkg-query -W -f='${Version}' libhttpcore5-java)
key="iceberg-${iceberg_version}-hc5-${hc_version}-core5-${hcore_version}-jackson-${jackson_version}-r${RECIPE}"
out_dir="$cache/spark-deps/$key"
out_jar="$out_dir/iceberg-spark-runtime-shaded-deps-${iceberg_version}.jar"

# --- Build -------------------------------------------------------------------------------------
if [ ! -s "$out_jar" ] || [ ! -f "$out_dir/.complete" ]; then
    say "building $out_jar"
    mkdir -p "$cache/spark-deps"
    work=$(mktemp -d "$cache/spark-deps/.build-XXXXXX")
    trap 'rm -rf "$work"' EXIT

    # 1. Everything to relocate, merged into one plain jar. Multi-release and module
    #    descriptors are dropped: jarjar's ASM would otherwise have to rewrite module-info.
    mkdir -p "$work/classes"
    for j in "$httpcore5" ${httpcore5_h2:+"$httpcore5_h2"} "$httpclient5" \
        "$jackson_annotations" "$jackson_core" "$jackson_databind" "$jackson_jsr310"; do
        (cd "$work/classes" && unzip -qo "$j" -x 'META-INF/*') || die "cannot unpack $j"
    done
    rm -f "$work/classes/module-info.class"

    # 2. The httpclient 5.4+ interface the runtime's TLS code references.
    mkdir -p "$work/stub-src/org/apache/hc/client5/http/ssl"
    cat > "$work/stub-src/org/apache/hc/client5/http/ssl/TlsSocketStrategy.java" <<'EOF'
package org.apache.hc.client5.http.ssl;
public interface TlsSocketStrategy {}
EOF
    javac --release 8 -Xlint:-options -d "$work/classes" \
        "$work/stub-src/org/apache/hc/client5/http/ssl/TlsSocketStrategy.java" >&2 \
        || die "javac failed on the TlsSocketStrategy stub"

    (cd "$work/classes" && jar cf "$work/unrelocated.jar" .) >&2 || die "jar failed"

    # 3. Relocate with jarjar (Debian's jar lists its ASM dependency in its manifest; put
    #    libasm-java on the class path anyway).
    cat > "$work/rules.txt" <<'EOF'
rule org.apache.hc.** org.apache.iceberg.shaded.org.apache.hc.@1
rule com.fasterxml.jackson.** org.apache.iceberg.shaded.com.fasterxml.jackson.@1
EOF
    asm_cp=$(dpkg -L libasm-java | grep -E '/usr/share/java/asm[a-z-]*\.jar$' | grep -vE -- '-[0-9][^/]*\.jar$' | tr '\n' ':')
    java -cp "$jarjar:${asm_cp}" com.tonicsystems.jarjar.Main process \
        "$work/rules.txt" "$work/unrelocated.jar" "$work/relocated.jar" >&2 \
        || die "jarjar failed"

    # 4. Check: the classes the runtime jar needs are there, under the shaded names.
    listing=$(unzip -Z1 "$work/relocated.jar")
    for cls in \
        org/apache/iceberg/shaded/org/apache/hc/core5/http/Method.class \
        org/apache/iceberg/shaded/org/apache/hc/client5/http/impl/classic/CloseableHttpClient.class \
        org/apache/iceberg/shaded/org/apache/hc/client5/http/ssl/TlsSocketStrategy.class \
        org/apache/iceberg/shaded/com/fasterxml/jackson/databind/ObjectMapper.class \
        org/apache/iceberg/shaded/com/fasterxml/jackson/core/JsonFactory.class \
        org/apache/iceberg/shaded/com/fasterxml/jackson/annotation/JsonProperty.class \
        org/apache/iceberg/shaded/com/fasterxml/jackson/datatype/jsr310/JavaTimeModule.class; do
        grep -qxF "$cls" <<<"$listing" || die "relocated jar lacks $cls"
    done
    if grep -qE '^(org/apache/hc|com/fasterxml)/' <<<"$listing"; then
        die "relocated jar still holds unrelocated classes"
    fi

    mkdir -p "$out_dir"
    mv -f "$work/relocated.jar" "$out_jar"
    touch "$out_dir/.complete"
    say "built $out_jar ($(du -h "$out_jar" | cut -f1))"
else
    say "cached $out_jar"
fi

echo "$runtime_jar,$extensions_jar,$out_jar"
