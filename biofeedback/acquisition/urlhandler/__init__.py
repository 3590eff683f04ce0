"""pyserial URL handlers of the project (``sim://``).

:func:`biofeedback.acquisition.serial_source.register_url_handler` adds this
package to ``serial.protocol_handler_packages``.
"""
