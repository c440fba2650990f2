//! Azure Functions custom-handler envelopes (`{"Data": {...}, "Metadata": {...}}`) for the
//! Event Grid trigger (binding `event`) and the queue trigger (binding `message`), then the
//! unwrapped delivery through the event parser, as the handler does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchwatch_host::envelope::binding_json;
use patchwatch_model::event::parse_delivery;

fuzz_target!(|data: &[u8]| {
    for binding in ["event", "message"] {
        if let Ok((bytes, _meta)) = binding_json(data, binding) {
            // The decoded binding is always JSON text (an object or an array).
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).expect("binding_json returned bytes that are not JSON");
            assert!(value.is_object() || value.is_array(), "binding_json returned {value}");
            let _ = parse_delivery(&bytes);
        }
    }
});
