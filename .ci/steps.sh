# Sourced by .ci/windows and .ci/macos: `step NAME` prints "== NAME" and the wall time of
# the step before it; `step end` prints the last step's time and the job's total.
JOB_START=$(date +%s)
STEP_START=$JOB_START
STEP=""
step() {
    local now
    now=$(date +%s)
    [ -z "$STEP" ] || echo "   ($STEP: $((now - STEP_START)) s)"
    STEP=$1
    STEP_START=$now
    if [ "$1" = end ]; then
        echo "   (total: $((now - JOB_START)) s)"
    else
        echo "== $1"
    fi
}
