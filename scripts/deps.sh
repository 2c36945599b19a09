#!/bin/sh
# deps.sh - install the Debian 12 packages intake needs, if any is missing.
#
# Called by `make`, `make run`, `make check` and `make bench`.  It asks dpkg
# first and only runs apt-get when something is missing, so a machine that
# has everything pays a few milliseconds.  Needs root to install; without
# root it prints the apt-get line to run and fails.
set -eu

# Build: compiler, pkg-config and the -dev packages of DESIGN.md, plus
# libseccomp-dev for the parse workers' system-call filter (not in
# DESIGN.md's list: docs/design-notes.md says why).
BUILD="gcc make pkg-config libc6-dev libglib2.0-dev libgmime-3.0-dev libsqlite3-dev libsodium-dev libjson-glib-dev libytnef0-dev libstemmer-dev libpcre2-dev libetpan-dev libsoup-3.0-dev libseccomp-dev"
# Run time: TLS for GIO.
RUN="glib-networking ca-certificates shared-mime-info libsasl2-modules"
# Tests: Check, and the real clients the integration tests drive; Dovecot
# is the real IMAP server of the IMAP intake tests (tests/integration/
# dovecot.py starts a private one; the system service is never used).
# Chromium is the headless browser of the web form tests (test_browser.py
# drives it over the DevTools protocol with tests/integration/cdp.py).
TEST="check python3 curl swaks libnet-ssleay-perl openssl sqlite3 procps dovecot-core dovecot-imapd chromium"
# Benchmark: Postfix's smtp-source and smtp-sink (the daemon is not started).
BENCH="postfix"
# Fuzzing: clang with libFuzzer and the sanitizer runtimes.
FUZZ="clang libclang-rt-14-dev"

want="$BUILD $RUN"
for set in "$@"; do
	case "$set" in
	test) want="$want $TEST" ;;
	bench) want="$want $TEST $BENCH" ;;
	fuzz) want="$want $FUZZ" ;;
	esac
done

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root; run: apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks what kind of mail server this is; intake only uses its
# benchmark tools, so it is installed unconfigured and never started.
if echo "$missing" | grep -q postfix; then
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
# Dovecot's package starts the system service on install.  The tests run
# private instances on their own ports and want none: while installing,
# a policy-rc.d that refuses every start is put in place (unless the
# machine already has one, as containers often do), and any dovecot that
# got started anyway is stopped, and the systemd units disabled.
policy=""
if echo "$missing" | grep -q dovecot && [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -q >/dev/null || apt-get update
apt-get install -y -q --no-install-recommends $missing
if echo "$missing" | grep -q dovecot; then
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
	fi
	service dovecot stop >/dev/null 2>&1 || true
	# The system one runs as /usr/sbin/dovecot with the default config;
	# private test instances always pass -c, so they are left alone.
	for pid in $(pgrep -x dovecot 2>/dev/null || true); do
		if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- ' -c '; then
			kill "$pid" 2>/dev/null || true
		fi
	done
fi
