#!/bin/sh
# The official image's contract, reduced to what localdev and compose files use: `redis-server ...` (or
# only its flags) runs as the redis user, after /data is handed to it; any other command runs as it is.
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = "redis-server" ] && [ "$(id -u)" = "0" ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

umask 0077
exec "$@"
