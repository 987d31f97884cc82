"""The three classes of the global branch and their trimap image values (no torch here).

The semantic logits' channels are background, transition (unknown) and foreground;
P3M-10k's trimap PNGs store the same classes as 0, 128 and 255.
"""

BACKGROUND, TRANSITION, FOREGROUND = 0, 1, 2

TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0, 128, 255
#: Trimap image value of each class, indexed by class.
TRIMAP_VALUES = (TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND)
