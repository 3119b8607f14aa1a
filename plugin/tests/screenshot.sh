#!/usr/bin/env bash
# Screenshot test of the real editor, in both modes: runs the standalone build under Xvfb and
# grabs its window with xwd, checking that it rendered (the expected size and a real picture with
# many colours, not pixel equality) and did not panic.
#   - Suggest: the melody of a .mid file is used as the captured phrase (COMPER_MELODY); the shot
#     is taken once the five options are there → target/screenshots/panel.png.
#   - Live: the same melody is played into the input while the transport runs (COMPER_PLAY,
#     COMPER_MODE=live); the shot shows the timeline after Comper joined in
#     → target/screenshots/panel-live.png.
# The committed copies are assets/panel.png and assets/panel-live.png.
#
# The screen is larger than the window and the pointer starts at its centre, off the window, so
# no hover tooltip covers the panel.
# Needs: xvfb xauth x11-apps imagemagick, and `cargo build --release -p comper-plugin
# --features standalone --bin comper-standalone`.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${COMPER_STANDALONE:-target/release/comper-standalone}
out=target/screenshots
mkdir -p "$out"
display=:${COMPER_XVFB_DISPLAY:-97}
melody=assets/ode_to_joy.mid

Xvfb "$display" -screen 0 1920x1080x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
xvfb=$!
app=""
trap 'kill $app "$xvfb" 2>/dev/null || true' EXIT
sleep 2

# shoot NAME WAIT_SECONDS ENV…: runs the standalone with the given environment, waits, grabs.
shoot() {
    local name=$1 wait=$2
    shift 2
    env "$@" DISPLAY="$display" "$binary" --backend dummy >"$out/$name.log" 2>&1 &
    app=$!
    sleep "$wait"
    if ! kill -0 "$app" 2>/dev/null; then
        echo "the standalone exited early:"; cat "$out/$name.log"; exit 1
    fi
    local window
    window=$(xwininfo -display "$display" -root -tree | awk '/"Comper"/ {print $1; exit}')
    if [ -z "$window" ]; then
        echo "no Comper window on $display"; xwininfo -display "$display" -root -tree; exit 1
    fi
    xwd -display "$display" -id "$window" -silent | /usr/bin/convert xwd:- "$out/$name.png"
    kill "$app"
    wait "$app" 2>/dev/null || true
    app=""
    local size colours width height
    size=$(/usr/bin/identify -format '%w %h' "$out/$name.png")
    colours=$(/usr/bin/identify -format '%k' "$out/$name.png")
    echo "$name.png: $size, $colours colours"
    read -r width height <<<"$size"
    [ "$width" -eq 960 ] && [ "$height" -eq 640 ] || { echo "unexpected size $size"; exit 1; }
    [ "$colours" -gt 50 ] || { echo "the window looks empty ($colours colours)"; exit 1; }
    if grep -qi "panic" "$out/$name.log"; then
        echo "the standalone panicked:"; cat "$out/$name.log"; exit 1
    fi
    echo "screenshot ok: $out/$name.png"
}

# Loading the model and sampling the options takes a few seconds; give it plenty. Live listens
# for 8 beats (4 s at the standalone's 120 BPM) and then plays; 24 s shows several bars of chords.
shoot panel "${COMPER_SCREENSHOT_WAIT:-20}" COMPER_MELODY="$melody"
rm -f "$out/panel-live.chords"
shoot panel-live "${COMPER_LIVE_SCREENSHOT_WAIT:-24}" COMPER_MODE=live COMPER_PLAY="$melody" \
    COMPER_CHORD_LOG="$out/panel-live.chords"
grep -q '"live"' "$out/panel-live.chords" || { echo "Live mode planned no chords"; exit 1; }
echo "live plans sent: $(grep -c '"live"' "$out/panel-live.chords")"
