#!/bin/sh
# dev-setup.sh - what `make run` needs before intaked starts: a development
# master key under var/ (mode 0600), made once.  The database is created by
# intaked itself on first start (schema migrations run there).
set -eu
umask 077
mkdir -p var
if [ ! -f var/master.key ]; then
	build/intakectl -c conf/intake.conf keygen
	echo "dev-setup: this is a DEVELOPMENT key; production keys belong to the service manager" >&2
fi
