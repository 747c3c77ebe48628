"""Scene generators: one module a scene, registered by the same name as `configs/dataset/<name>.yaml`."""

from physworld.data.scenes import moving_mnist

SCENES = {
    "moving_mnist": moving_mnist,
}
