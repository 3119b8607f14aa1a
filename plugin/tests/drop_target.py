"""A drop target of another toolkit for the drag-out test: a Tk window (with the tkdnd
extension, Debian's `tkdnd` package) that accepts files dropped on it (`text/uri-list` over
XDND) and writes each dropped path, one a line, to the file named on the command line.

    python3 drop_target.py OUT [GEOMETRY]      (GEOMETRY default: 260x200+990+120)
"""

import sys
import tkinter as tk

out = sys.argv[1]
geometry = sys.argv[2] if len(sys.argv) > 2 else "260x200+990+120"

root = tk.Tk()
root.title("Drop here")
root.geometry(geometry)
label = tk.Label(root, text="Drop a clip here", bg="#2d6a4f", fg="white")
label.pack(fill="both", expand=True)
root.tk.call("package", "require", "tkdnd")
# The label fills the window, so it is the widget under the pointer: it is the drop target.
root.tk.call("tkdnd::drop_target", "register", label._w, "DND_Files")


def dropped(paths):
    files = root.tk.splitlist(paths)
    with open(out, "a") as f:
        for path in files:
            f.write(path + "\n")
    label.configure(text="\n".join(files))
    return "copy"


command = root.register(dropped)
root.tk.call("bind", label._w, "<<Drop:DND_Files>>", command + " %D")
print("drop target ready", flush=True)
root.mainloop()
