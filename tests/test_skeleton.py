import pytest

from etl.common.errors import ActrecError
from etl.pose.skeleton import LAYOUTS, get_layout


def _mirror_name(name: str) -> str:
    if "left" in name:
        return name.replace("left", "right")
    if "right" in name:
        return name.replace("right", "left")
    return name


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_joint_mirror_pairs_follow_the_names(layout):
    index = {n: i for i, n in enumerate(layout.joints)}
    assert len(index) == layout.n_joints, "duplicate joint names"
    expected = [index[_mirror_name(n)] for n in layout.joints]
    assert list(layout.joint_flip) == expected


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_limb_mirror_pairs_map_each_limb_onto_its_mirror(layout):
    jf = layout.joint_flip
    limb_sets = [frozenset(limb) for limb in layout.limbs]
    assert len(set(limb_sets)) == len(limb_sets), "duplicate limbs"
    for i, (a, b) in enumerate(layout.limbs):
        mirrored = frozenset((jf[a], jf[b]))
        assert limb_sets[layout.limb_flip[i]] == mirrored, (layout.name, i, layout.limb_names[i])


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_channel_flip_is_an_involution(layout):
    for preset in ("joints", "limbs", "joints+limbs"):
        perm = layout.channel_flip(preset)
        assert len(perm) == len(layout.channel_names(preset))
        assert [perm[p] for p in perm] == list(range(len(perm)))


def test_penn13_joints_plus_limbs_is_the_original_27_channels():
    penn = get_layout("penn13")
    assert penn.n_joints == 13
    assert len(penn.limbs) == 14
    names = penn.channel_names("joints+limbs")
    assert len(names) == 27
    assert names[0] == "joint:head"
    assert names[13] == "limb:head-left_shoulder"


def test_coco17_limb_pairs_match_the_posec3d_config():
    coco = get_layout("coco17")
    left = [a for a, _ in coco.left_right_limbs]
    right = [b for _, b in coco.left_right_limbs]
    assert sorted(left) == [0, 2, 3, 6, 7, 8, 12, 14]
    assert sorted(right) == [1, 4, 5, 9, 10, 11, 13, 15]


def test_unknown_layout_and_preset_are_clear_errors():
    with pytest.raises(ActrecError, match="known layouts: coco17"):
        get_layout("coco18")
    with pytest.raises(ActrecError, match="joints\\+limbs"):
        get_layout("coco17").channel_names("bones")
