"""The live window (PyQt6 + pyqtgraph): the only package that imports Qt.

Import :mod:`biofeedback.ui.window` only after deciding the Qt platform
(``QT_QPA_PLATFORM``); nothing here is imported by the rest of the toolkit.
"""
