"""Scene generators: one module a scene, registered by the same name as `configs/dataset/<name>.yaml`."""

from physworld.data.scenes import (
    bouncing_balls,
    double_pendulum,
    falling_objects,
    goal_reach,
    moving_mnist,
    multi_ball,
    orbital,
    pendulum,
    projectile,
    spring_mass,
    wave,
)

SCENES = {
    "moving_mnist": moving_mnist,
    "bouncing_balls": bouncing_balls,
    "pendulum": pendulum,
    "spring_mass": spring_mass,
    "multi_ball": multi_ball,
    "projectile": projectile,
    "double_pendulum": double_pendulum,
    "falling_objects": falling_objects,
    "wave": wave,
    "orbital": orbital,
    "goal_reach": goal_reach,  # interactive: stores actions and rewards (not in dataset=all)
}
