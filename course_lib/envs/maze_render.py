"""Drawing the maze: text for terminals, an RGB image for notebooks. No MDP logic here."""

from __future__ import annotations

import numpy as np

ROBOT = "R"
COLORS = {  # RGB per cell character
    "#": (60, 60, 70),
    ".": (235, 235, 225),
    "S": (200, 225, 255),
    "C": (255, 205, 40),
    "T": (200, 60, 60),
    "X": (120, 40, 40),
}
ROBOT_COLOR = (40, 110, 220)


def render_ansi(grid: np.ndarray, robot: tuple[int, int]) -> str:
    """The maze as text, one line per row, with the robot drawn as ``R``."""
    rows = []
    for r in range(grid.shape[0]):
        rows.append("".join(ROBOT if (r, c) == tuple(robot) else grid[r, c] for c in range(grid.shape[1])))
    return "\n".join(rows) + "\n"


def render_rgb(grid: np.ndarray, robot: tuple[int, int], cell: int = 24) -> np.ndarray:
    """The maze as a (H * cell, W * cell, 3) uint8 image; the robot is a blue disc."""
    H, W = grid.shape
    img = np.zeros((H * cell, W * cell, 3), dtype=np.uint8)
    for r in range(H):
        for c in range(W):
            img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = COLORS[grid[r, c]]
    # grid lines
    img[::cell, :, :] = 180
    img[:, ::cell, :] = 180
    # cheese: a small wedge mark; robot: a filled disc
    yy, xx = np.mgrid[0:cell, 0:cell]
    centre = (cell - 1) / 2
    disc = (yy - centre) ** 2 + (xx - centre) ** 2 <= (cell * 0.35) ** 2
    r, c = robot
    patch = img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
    patch[disc] = ROBOT_COLOR
    return img
