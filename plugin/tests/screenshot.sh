#!/usr/bin/env bash
# Screenshot test of the real editor: runs the standalone build under Xvfb with a scripted melody
# (COMPER_MELODY: the melody of a .mid file is used as the captured phrase), waits for the five
# options, grabs the window with xwd and checks that it rendered: the expected size and a real
# picture (many colours), not pixel equality. The PNG is kept at target/screenshots/panel.png.
#
# Needs: xvfb xauth x11-apps imagemagick, and `cargo build --release -p comper-plugin
# --features standalone --bin comper-standalone`.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${COMPER_STANDALONE:-target/release/comper-standalone}
out=target/screenshots
mkdir -p "$out"
display=:${COMPER_XVFB_DISPLAY:-97}

Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill "$app" "$xvfb" 2>/dev/null || true' EXIT
sleep 2

COMPER_MELODY=assets/ode_to_joy.mid DISPLAY=$display "$binary" --backend dummy \
    >"$out/standalone.log" 2>&1 &
app=$!
# Loading the model and sampling the options takes a few seconds; give it plenty.
sleep "${COMPER_SCREENSHOT_WAIT:-20}"
if ! kill -0 "$app" 2>/dev/null; then
    echo "the standalone exited early:"; cat "$out/standalone.log"; exit 1
fi

window=$(xwininfo -display "$display" -root -tree | awk '/"Comper"/ {print $1; exit}')
if [ -z "$window" ]; then
    echo "no Comper window on $display"; xwininfo -display "$display" -root -tree; exit 1
fi
xwd -display "$display" -id "$window" -silent | /usr/bin/convert xwd:- "$out/panel.png"
size=$(/usr/bin/identify -format '%w %h' "$out/panel.png")
colours=$(/usr/bin/identify -format '%k' "$out/panel.png")
echo "panel.png: $size, $colours colours"
read -r width height <<<"$size"
[ "$width" -eq 960 ] && [ "$height" -eq 640 ] || { echo "unexpected size $size"; exit 1; }
[ "$colours" -gt 50 ] || { echo "the window looks empty ($colours colours)"; exit 1; }
grep -qi "panic" "$out/standalone.log" && { echo "the standalone panicked"; exit 1; }
echo "screenshot ok: $out/panel.png"
