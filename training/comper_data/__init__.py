"""Turn public lead-sheet datasets into ReaLchords-style training sequences for Comper.

Modules:
    chords    -- chord qualities, dataset chord-label parsers, note_seq naming, simplification
    song      -- the dataset-independent song model and its 16th-note framing
    tokens    -- frames -> ReaLchords token ids (the online interleaved layout)
    pop909, nottingham, openewld -- one loader per dataset, each yielding `Song`s
"""
