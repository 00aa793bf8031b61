#!/bin/sh
# Container entrypoint: make the model directory exactly the wanted version,
# then exec the server (so it is PID 1's successor and gets the signals).
#
#   entrypoint.sh                     pull only (an initContainer)
#   entrypoint.sh SERVER [ARGS...]    pull, then exec SERVER ARGS...
#
# Configuration comes from the environment, so the image bakes in nothing:
#   PYDELTA_STORE     the store: s3://bucket/prefix, https://host/path, or a path (required)
#   PYDELTA_DEST      the model directory (default /models/model)
#   PYDELTA_TAG       the tag to pull (default latest), or PYDELTA_VERSION
#   PYDELTA_NEAR      space-separated stores to try first (a regional mirror,
#                     a node cache, an nginx next to the cluster)
#   PYDELTA_JOBS      parallel requests (default 8)
#   PYDELTA_TIMEOUT   give up after this many seconds
#   PYDELTA_QUICK     1 (default): trust the record of the last pull into
#                     PYDELTA_DEST if sizes and times still match; 0: re-check every byte
#   PYDELTA_ENDPOINT_URL, AWS_*   S3 endpoint and credentials
#   PYDELTA_PULL_ARGS extra arguments for pydelta pull (e.g. --delete)
#
# Exit status when the pull fails (the server is not started): 10 store
# unreachable, 11 version missing, 5 verification failed, 12 disk full,
# 13 timed out, 8 access denied, 1 anything else. Several containers sharing
# PYDELTA_DEST wait for one another (a lock beside it); one downloads.
set -eu

: "${PYDELTA_STORE:?set PYDELTA_STORE to the model store (s3://bucket/prefix, https://..., or a path)}"
: "${PYDELTA_DEST:=/models/model}"
: "${PYDELTA_QUICK:=1}"
export PYDELTA_STORE PYDELTA_DEST PYDELTA_QUICK

status=0
# shellcheck disable=SC2086  # PYDELTA_PULL_ARGS is a list of words
pydelta pull ${PYDELTA_PULL_ARGS:-} || status=$?
if [ "$status" -ne 0 ]; then
    echo "entrypoint: pulling the model into $PYDELTA_DEST failed (exit $status); not starting the server" >&2
    exit "$status"
fi
if [ "$#" -eq 0 ]; then
    exit 0
fi
exec "$@"
