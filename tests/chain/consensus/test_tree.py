"""The block tree: validation on any branch, moving the working ledger between branches,
votes, justification and finality (PROTOCOL §6.2; the arithmetic alone is in
test_finality.py), fork choice, Ouroboros-BFT depth settlement, and pruning on finality."""
from __future__ import annotations

import pytest

from blockiot.chain.consensus.params import ConsensusParams
from blockiot.chain.consensus.tree import BlockTree
from blockiot.chain.errors import InvalidBlock
from blockiot.chain.ledger import Ledger


@pytest.fixture
def tree(cluster):
    return BlockTree(Ledger(cluster.genesis), cluster.params)


def build(cluster, tree, parent, slot, txs=()):
    return tree.build(cluster.identities[cluster.params.leader(slot)], slot, parent, list(txs))


def chain(cluster, tree, slots, parent=None):
    nodes = []
    parent = parent or tree.root
    for slot in slots:
        parent = build(cluster, tree, parent, slot)
        nodes.append(parent)
    return nodes


def test_a_block_is_justified_by_q_votes_and_final_2q_minus_1_slots_later(cluster, tree):
    nodes = chain(cluster, tree, range(1, 7))  # n = 4, q = 3
    assert [b.vote.just for b in nodes] == [-1, -1, -1, 1, 2, 3]  # slot u justifies u - q
    assert tree.final_of(nodes[-2]) is None
    assert tree.final_of(nodes[-1]) is nodes[0]  # slots 3, 4, 5 saw slot 1 justified... and 6 makes q


def test_a_gap_in_the_chain_delays_finality(cluster, tree):
    b1, b2, b6, b7, b8, b9 = chain(cluster, tree, [1, 2, 6, 7, 8, 9])
    assert b6.vote.just == -1 and b9.vote.just == 6  # b1, b2 never get q votes in their windows
    assert all(tree.final_of(b) is None for b in (b6, b7, b8, b9))
    b10, b11 = chain(cluster, tree, [10, 11], parent=b9)
    assert tree.final_of(b10) is None
    assert tree.final_of(b11) is b6  # 9, 10, 11 have J >= 6 and slots 6..8 are dense


def test_fork_choice_prefers_the_highest_justified_block_over_length(cluster, tree):
    a = chain(cluster, tree, [1, 2, 3, 4])  # a[3] justifies slot 1
    b = chain(cluster, tree, range(5, 55, 5), parent=a[0])  # longer, but too sparse to justify anything
    assert b[-1].vote.just == -1 < a[3].vote.just and b[-1].height > a[3].height
    assert tree.head is a[3]
    c = chain(cluster, tree, [55, 56, 57, 58, 59], parent=b[-1])
    assert c[-1].vote.just == 56
    assert tree.head is c[-1]


def test_fork_choice_takes_the_longer_branch_and_breaks_ties_by_the_lower_id(cluster, tree):
    a1, a2 = chain(cluster, tree, [1, 2])
    b2 = build(cluster, tree, a1, 3)
    assert tree.head is min((a2, b2), key=lambda n: n.id)  # same height and J: every node picks the same
    b3 = build(cluster, tree, b2, 4)
    assert tree.head is b3


def test_goto_moves_the_state_between_branches(cluster, tree):
    root = tree.root
    a = build(cluster, tree, root, 1, [cluster.reading(4, 10)])
    a2 = build(cluster, tree, a, 2, [cluster.reading(5, 20)])
    b = build(cluster, tree, root, 3, [cluster.reading(5, 30)])
    replay_a2 = Ledger(cluster.genesis)
    replay_a2.apply_block(a.applied.block.raw)
    replay_a2.apply_block(a2.applied.block.raw)
    tree.goto(a2)
    assert tree.ledger.state.state_root() == replay_a2.state.state_root() == a2.applied.state_root
    tree.goto(b)
    assert tree.ledger.state.state_root() == b.applied.state_root
    assert tree.ledger.head.id == b.id


def test_add_validates_on_the_parents_branch(cluster, tree):
    root = tree.root
    other = Ledger(cluster.genesis)
    block = other.build_block(cluster.identities[cluster.params.leader(1)], 1, [cluster.reading(4)]).block
    chain(cluster, tree, [2, 3])  # the working ledger is elsewhere
    node = tree.add(block, root)
    assert node.parent is root and tree.add(block, root) is node
    wrong = Ledger(cluster.genesis).build_block(cluster.identities[cluster.params.leader(5)], 5, []).block
    with pytest.raises(InvalidBlock):
        tree.add(wrong, node)  # built on the genesis, not on `node`


def test_finalize_prunes_every_other_branch(cluster, tree):
    a1, a2 = chain(cluster, tree, [1, 2])
    b1 = build(cluster, tree, tree.root, 3)
    c3 = build(cluster, tree, a2, 4)
    path = tree.finalize(a2)
    assert path == [a1, a2]
    assert tree.root is a2 and tree.get(b1.id) is None and tree.get(c3.id) is c3
    assert tree.at_slot(3) == [] and tree.head is c3


def test_depth_settlement_follows_ouroboros_bft(cluster):
    params = ConsensusParams.from_genesis(cluster.genesis, finality="obft")
    tree = BlockTree(Ledger(cluster.genesis), params)
    nodes = chain(cluster, tree, [1, 2, 3])
    assert tree.settled_by_depth(4) is None
    assert tree.settled_by_depth(5) is nodes[0]  # k = 3f + 1 = 4 slots after slot 1
    assert tree.settled_by_depth(7) is nodes[2]
