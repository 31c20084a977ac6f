"""The node's ROS 2 parameters, declared from the one table in ``hand_mesh_ros.config``.

Every entry of ``config.PARAMETERS`` becomes a read-only parameter with a descriptor
(``ros2 param describe``: description with unit, type, the allowed values as
``additional_constraints``, and an integer / floating-point range for bounded numbers, so
rclpy itself refuses values outside it); the values are then checked by the table
(``config.check_values``: open bounds such as "> 0", lists, rules between parameters) and
returned as a ``config.NodeParams``.
"""
from __future__ import annotations

import math

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter

from hand_mesh_ros.config import PARAMETERS, NodeParams, Param, check_values

INT64_MAX = 2**63 - 1
_ROS_TYPES = {"str": ParameterType.PARAMETER_STRING, "int": ParameterType.PARAMETER_INTEGER,
              "float": ParameterType.PARAMETER_DOUBLE, "bool": ParameterType.PARAMETER_BOOL,
              "str_list": ParameterType.PARAMETER_STRING_ARRAY, "str_or_int": ParameterType.PARAMETER_NOT_SET}


def descriptor(p: Param) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of ``p`` (read-only: parameters are read at start-up)."""
    d = ParameterDescriptor(name=p.name, type=_ROS_TYPES[p.kind], read_only=True,
                            description=p.doc + (f" [{p.unit}]" if p.unit else ""),
                            additional_constraints=p.allowed(),
                            dynamic_typing=p.kind == "str_or_int")  # a string or an integer
    if (p.low is None and p.high is None) or p.kind == "str_or_int":
        return d
    if p.kind == "int":
        d.integer_range = [IntegerRange(from_value=int(p.low) if p.low is not None else -INT64_MAX - 1,
                                        to_value=int(p.high) if p.high is not None else INT64_MAX, step=1)]
    elif p.kind == "float":  # a range is inclusive: an open bound (> 0) is left to config.check_value
        d.floating_point_range = [FloatingPointRange(
            from_value=float(p.low) if p.low is not None else -math.inf,
            to_value=float(p.high) if p.high is not None else math.inf, step=0.0)]
    return d


def declare_parameters(node: Node) -> NodeParams:
    """Declare every parameter of ``config.PARAMETERS`` on ``node`` and return their checked values.

    A string list left empty in a params file arrives as an unset STRING_ARRAY: it reads as ``[]``;
    empty strings in lists are dropped.

    Raises:
        ValueError: a value of the wrong type or not allowed; one line naming the parameter and
            what is allowed.
    """
    values = {}
    for p in PARAMETERS:
        default = Parameter.Type.STRING_ARRAY if p.kind == "str_list" else p.default
        try:
            node.declare_parameter(p.name, default, descriptor(p))
        except (InvalidParameterValueException, InvalidParameterTypeException) as e:
            raise ValueError(f"parameter '{p.name}': not allowed ({e}); allowed: {p.allowed()}") from None
        try:
            values[p.name] = node.get_parameter(p.name).value
        except ParameterUninitializedException:
            values[p.name] = []
        if p.kind == "str_list":
            values[p.name] = [t for t in values[p.name] or [] if t]
    return NodeParams(**check_values(values))
