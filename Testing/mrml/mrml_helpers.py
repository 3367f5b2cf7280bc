"""Shared constants of the MRML-tier tests (a uniquely named module: `conftest` is
ambiguous when pytest collects several test folders)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
SLICER_CORE = "the MRML tier needs the slicer-core wheel: pip install .[scene]"


def orphan_helper_nodes(scene) -> list[str]:
    """Display and storage nodes that no node of the scene refers to (review m1): what
    removing a volume without its helper nodes leaves behind."""
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    used = set()
    for node in nodes:
        if node.IsA("vtkMRMLDisplayableNode"):
            used |= {node.GetNthDisplayNodeID(i) for i in range(node.GetNumberOfDisplayNodes())}
        if node.IsA("vtkMRMLStorableNode"):
            used.add(node.GetStorageNodeID())
    return sorted(f"{node.GetClassName()} {node.GetName()}" for node in nodes
                  if (node.IsA("vtkMRMLDisplayNode") or node.IsA("vtkMRMLStorageNode"))
                  and node.GetID() not in used)
