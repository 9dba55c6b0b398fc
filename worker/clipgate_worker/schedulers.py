"""Scheduler names a job may ask for (the gateway's list) mapped to diffusers scheduler classes and options."""

from __future__ import annotations

from typing import Any

import diffusers

#: name → (diffusers class name, extra config). Karras variants use Karras sigmas; SDE ones the SDE solver.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIMScheduler": ("DDIMScheduler", {}),
    "DDPMScheduler": ("DDPMScheduler", {}),
    "DEISMultistepScheduler": ("DEISMultistepScheduler", {}),
    "DPMSolverMultistepScheduler": ("DPMSolverMultistepScheduler", {}),
    "DPMSolverSinglestepScheduler": ("DPMSolverSinglestepScheduler", {}),
    "DPMSolverSDEScheduler": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "EulerDiscreteScheduler": ("EulerDiscreteScheduler", {}),
    "EulerAncestralDiscreteScheduler": ("EulerAncestralDiscreteScheduler", {}),
    "HeunDiscreteScheduler": ("HeunDiscreteScheduler", {}),
    "KDPM2DiscreteScheduler": ("KDPM2DiscreteScheduler", {}),
    "KDPM2AncestralDiscreteScheduler": ("KDPM2AncestralDiscreteScheduler", {}),
    "LCMScheduler": ("LCMScheduler", {}),
    "LMSDiscreteScheduler": ("LMSDiscreteScheduler", {}),
    "PNDMScheduler": ("PNDMScheduler", {}),
    "TCDScheduler": ("TCDScheduler", {}),
    "UniPCMultistepScheduler": ("UniPCMultistepScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LCM": ("LCMScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "PLMS": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
}


def scheduler_for(name: str, base: Any) -> Any:
    """A scheduler of the named kind built from the model's own scheduler config; "Default" keeps it."""
    if name == "Default":
        return base
    if name not in SCHEDULERS:
        from .errors import InvalidJob

        raise InvalidJob(f"scheduler {name!r} is not supported; expected one of {sorted(SCHEDULERS)} or 'Default'")
    class_name, extra = SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(base.config, **extra)
