# Sourced by the deploy scripts: raise the open-file limit to NOFILE (default 65536, at most the hard limit).
hard=$(ulimit -Hn)
: "${NOFILE:=65536}"
if [ "$hard" != unlimited ] && [ "$NOFILE" -gt "$hard" ]; then
    NOFILE=$hard
fi
ulimit -n "$NOFILE"
export NOFILE
