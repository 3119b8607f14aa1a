#!/usr/bin/env bash
# Drag-out test of the real editor: under Xvfb, the standalone (with a melody captured from
# COMPER_MELODY and its five options) and a drop target of another toolkit (Tk + tkdnd,
# plugin/tests/drop_target.py) side by side; xdotool presses the panel's "Drag clip" handle,
# moves onto the Tk window and releases. The Tk window must receive the file over XDND, and the
# file must hold the playing option's chords (plugin/tests/check_dropped_clip.py against the
# standalone's chord log). A screenshot of the drag in progress is kept at
# target/screenshots/drag.png.
#
# Needs: xvfb xauth x11-apps imagemagick xdotool tkdnd python3-tk, a Python with mido
# ($COMPER_PYTHON, default python3), and the release standalone build.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${COMPER_STANDALONE:-target/release/comper-standalone}
python=${COMPER_PYTHON:-python3}
out=target/screenshots
mkdir -p "$out"
display=:${COMPER_XVFB_DISPLAY:-98}
export DISPLAY=$display
drops="$out/drops.txt"
log="$out/drag.chords"
rm -f "$drops" "$log"

Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$out/xvfb-drag.log" 2>&1 &
xvfb=$!
app=""
target=""
trap 'kill $app $target "$xvfb" 2>/dev/null || true' EXIT
sleep 2

python3 plugin/tests/drop_target.py "$drops" 260x200+990+120 >"$out/drop-target.log" 2>&1 &
target=$!
COMPER_DRAG_TRACE=1 COMPER_MELODY=assets/ode_to_joy.mid COMPER_CHORD_LOG="$log" COMPER_EXPORT_DIR="$out/exports" \
    "$binary" --backend dummy >"$out/drag-standalone.log" 2>&1 &
app=$!
sleep "${COMPER_SCREENSHOT_WAIT:-20}"
kill -0 "$app" || { echo "the standalone exited:"; cat "$out/drag-standalone.log"; exit 1; }
grep -q "ready" "$out/drop-target.log" || { echo "no drop target:"; cat "$out/drop-target.log"; exit 1; }

# The handle sits in the row under the five option lanes (see assets/panel.png); the window is
# at the screen's origin (no window manager).
window=$(xdotool search --name '^Comper$' | head -1)
eval "$(xdotool getwindowgeometry --shell "$window")"
handle_x=$((X + ${COMPER_HANDLE_X:-452}))
handle_y=$((Y + ${COMPER_HANDLE_Y:-451}))
echo "Comper window at $X,$Y; pressing the handle at $handle_x,$handle_y"
# Enter the window from outside, as a hand would (the panel learns where the pointer is from
# the crossing), then rest on the handle.
xdotool mousemove 1000 700
sleep 0.3
xdotool mousemove "$handle_x" "$handle_y"
sleep 0.5
xdotool mousedown 1
sleep 0.3
# A small move first, as a hand would: the panel starts the drag once the pointer leaves the
# press point with the button down.
xdotool mousemove $((handle_x + 8)) "$handle_y"
sleep 0.3
for step in 1 2 3 4 5 6 7 8 9 10 11 12; do
    xdotool mousemove $((handle_x + step * (1120 - handle_x) / 12)) $((handle_y + step * (220 - handle_y) / 12))
    sleep 0.1
done
sleep 0.5
xwd -display "$display" -root -silent | /usr/bin/convert xwd:- "$out/drag.png"
xdotool mouseup 1
sleep 2

if [ ! -s "$drops" ]; then
    echo "nothing was dropped on the Tk window"; cat "$out/drop-target.log"
    grep -i "drag\|drop" "$out/drag-standalone.log" || true
    exit 1
fi
dropped=$(head -1 "$drops")
echo "dropped: $dropped"
case "$dropped" in
    *"Comper option "*" - bars "*.mid) ;;
    *) echo "unexpected clip name"; exit 1 ;;
esac
"$python" plugin/tests/check_dropped_clip.py "$dropped" "$log"
grep -qi "panic" "$out/drag-standalone.log" && { echo "the standalone panicked"; exit 1; }
echo "drag-out ok; screenshot: $out/drag.png"
