"""Defenses: transforms in front of the codec (reversible unless said), T before encoding, T⁻¹ after.

The face is torch-free: :data:`DEFENSES`, :func:`register_defense` and :func:`fixture_name` come
from :mod:`.registry` (read at collection); the transforms (:class:`Defense`, :class:`Flip`, ...,
:class:`DefendedCodec`) are imported from :mod:`.transforms` on first use. A project adds its own
defense from its ``conftest.py``::

    from pytest_nicrobust.defenses import Defense, register_defense
    register_defense("median")          # now `defenses = ["median"]` is a valid suite entry

    @pytest.fixture
    def nicrobust_defense_median():     # "-" in a name becomes "_" in the fixture name
        return MyMedianDefense()        # a pytest_nicrobust.defenses.Defense
"""

from .. import lazy_attribute
from .registry import BUILTIN_DEFENSE_NAMES, DEFENSES, fixture_name, register_defense

__all__ = ["BUILTIN_DEFENSE_NAMES", "DEFENSES", "fixture_name", "register_defense"]


def __getattr__(attr):
    return lazy_attribute(__name__, "transforms", attr)
