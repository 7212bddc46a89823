"""Lowest layer: profiles, device choice, seeding, plotting helpers.

Nothing here imports torch at module level, so Part I (numpy + gymnasium)
starts without it.
"""

from course_lib.utils.device import pick_device, pick_dtype
from course_lib.utils.profile import PROFILES, Profile, by_profile, get_profile
from course_lib.utils.seeding import set_seed

__all__ = ["PROFILES", "Profile", "by_profile", "get_profile", "pick_device", "pick_dtype", "set_seed"]
