"""Spiking data in the formats people have on disk: the SHD/SSC HDF5 layout, MVSEC stereo
event-camera scenes, tonic event arrays."""

from ._events import bin_events as bin_events
from ._events import pad_events as pad_events
from ._hdf5 import SpikingHDF5 as SpikingHDF5
from ._mvsec import MVSEC as MVSEC
from ._mvsec import area_closing as area_closing
from ._tonic import channels_of as channels_of
from ._tonic import from_tonic as from_tonic
