# Shared set-up steps for scripts/test and scripts/demo: each one skips what is already there,
# so re-running on a prepared machine costs seconds. Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${OSCAR_VENV:-$ROOT/.venv}"
STATE_DIR="${OSCAR_SETUP_STATE:-/tmp/oscar-py-setup}"
mkdir -p "$STATE_DIR"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root for: $* (run as root or install sudo)"
    fi
}

# ensure_packages PKG...: install the Debian packages that are missing.
ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# in_background NAME COMMAND...: runs a set-up step alongside the next ones (its output goes
# to $STATE_DIR/NAME.log); finish_background waits for all of them and fails with the log of
# the first that failed. Steps that share nothing (apt, pip, npm) overlap this way on a fresh
# machine instead of adding up.
BACKGROUND_STEPS=()
in_background() {
    local name="$1"
    shift
    ("$@") >"$STATE_DIR/$name.log" 2>&1 &
    BACKGROUND_STEPS+=("$name:$!")
}
finish_background() {
    local step name
    for step in "${BACKGROUND_STEPS[@]}"; do
        name="${step%%:*}"
        if ! wait "${step##*:}"; then
            cat "$STATE_DIR/$name.log" >&2
            die "set-up step '$name' failed (its log is above)"
        fi
        cat "$STATE_DIR/$name.log" >&2
    done
    BACKGROUND_STEPS=()
}

# ensure_venv EXTRAS: a virtualenv at $VENV with this project installed (editable).
ensure_venv() {
    local spec="$ROOT$1"  # "" or an extras suffix like "[test]"
    ensure_venv_prerequisites
    [ -x "$VENV/bin/python" ] || { say "creating virtualenv $VENV"; python3 -m venv "$VENV"; }
    local stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)$1"
    if [ ! -e "$stamp" ]; then
        say "installing Python packages ($spec)"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
        touch "$stamp"
    fi
}

# ensure_venv_prerequisites: Python's venv module, installed from Debian where it is missing
# (run before any background step, since two apt-get cannot run at once).
ensure_venv_prerequisites() {
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then ensure_packages python3-venv; fi
}

# ensure_dockerd: a Docker Engine that answers, started in the background if none does.
ensure_dockerd() {
    ensure_packages docker.io
    if docker info >/dev/null 2>&1; then return 0; fi
    say "starting dockerd"
    as_root sh -c "nohup dockerd >'$STATE_DIR/dockerd.log' 2>&1 &"
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    tail -20 "$STATE_DIR/dockerd.log" >&2 || true
    die "dockerd did not answer within 30 s (log above)"
}

# ensure_postgres: a PostgreSQL server on loopback with a role that may create databases;
# exports OSCAR_TEST_POSTGRES_URL for the state-store tests.
ensure_postgres() {
    ensure_packages postgresql
    local version
    version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
    if ! pg_isready -q -h 127.0.0.1; then
        say "starting PostgreSQL $version"
        if ! pg_lsclusters -h | grep -q .; then as_root pg_createcluster "$version" main >/dev/null; fi
        as_root pg_ctlcluster "$version" main start
        for _ in $(seq 1 40); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
        pg_isready -q -h 127.0.0.1 || die "PostgreSQL did not start"
    fi
    as_root su postgres -c "psql -q -tAc \"SELECT 1 FROM pg_roles WHERE rolname='oscar_test'\" \
        | grep -q 1 || psql -q -c \"CREATE ROLE oscar_test LOGIN CREATEDB PASSWORD 'oscar_test'\"" \
        >/dev/null
    # DROP DATABASE ... WITH (FORCE) also ends an autovacuum worker (a superuser's process).
    as_root su postgres -c "psql -q -c 'GRANT pg_signal_backend TO oscar_test'" >/dev/null
    export OSCAR_TEST_POSTGRES_URL="postgresql://oscar_test:oscar_test@127.0.0.1:5432/postgres"
}

# ensure_test_images: the local images the tests run (no registry is reachable in CI), and
# Debian's docker-registry, the local registry the Swarm tests' nodes pull images from.
ensure_test_images() {
    ensure_packages busybox-static docker-registry
    "$ROOT/scripts/build-test-images"
}

# ensure_npm: Node.js and npm, from Debian where the machine has none.
ensure_npm() { command -v npm >/dev/null || ensure_packages nodejs npm; }

# ensure_oidc_provider: the OpenID provider the identity tests run (npm oidc-provider on
# Node.js, tests/support/oidc/), installed from package-lock.json.
ensure_oidc_provider() {
    ensure_npm
    local dir="$ROOT/tests/support/oidc"
    local stamp="$dir/node_modules/.installed-$(sha1sum <"$dir/package-lock.json" | cut -c1-12)"
    [ -e "$stamp" ] && return 0
    say "installing the test OpenID provider (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$stamp"
}
