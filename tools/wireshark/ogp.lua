-- OGP v1 (ordergate's order-entry protocol) for Wireshark and tshark.
--
-- Written from the wire contract: docs/PROTOCOL.md ("Framing and header",
-- "Messages", "Codes") and shared/protocol/PROTOCOL.md. Every message and
-- every field is named; pad bytes are shown as pad; a frame whose length,
-- header or template is wrong is flagged (Expert Info, Malformed) and still
-- shown as far as its bytes go.
--
-- Use:
--   tshark -X lua_script:tools/wireshark/ogp.lua -r capture.pcap -V
--   wireshark -X lua_script:tools/wireshark/ogp.lua capture.pcap
--   or copy this file to ~/.local/lib/wireshark/plugins/ (Wireshark 3.6+).
--
-- Which TCP streams are OGP: any stream whose first bytes are an OGP header
-- (heuristic: encoding 0xCAFE, schema 0x4F47, version 1), and every stream
-- on the port preference "OGP TCP port" (default 9000, README's example;
-- 0 turns it off). Display filter: `ogp`, `ogp.template_id == 10`,
-- `ogp.cl_ord_id == 42`, `ogp.order_rejected.reason == 2`, `ogp.bad_length`.
--
-- Framing: message_size (u16 little-endian, offset 0) counts the whole
-- frame; frames are taken out of the TCP stream with dissect_tcp_pdus, so a
-- frame split across segments is reassembled and several frames in one
-- segment are each shown. A length below the 12-byte header or above the
-- largest template (84) cannot be followed: the rest of the segment is
-- shown as one bad frame (the gateway itself closes such a stream).
--
-- To add a code (a new TerminateReason, say), add one line to its table
-- below; a code that no table names is shown as its number.

local ogp = Proto("ogp", "OGP v1 (ordergate order entry)")

----------------------------------------------------------------------------
-- Codes (docs/PROTOCOL.md "Codes"). One line per code.

local ENVIRONMENT = {
    [1] = "Production",
    [2] = "Sandbox",
}

local SIDE = {
    [1] = "Buy",
    [2] = "Sell",
}

-- MassCancel.side: 0 means both sides.
local MASS_CANCEL_SIDE = {
    [0] = "Both",
    [1] = "Buy",
    [2] = "Sell",
}

local ORD_TYPE = {
    [1] = "Limit",
}

local TIF = {
    [0] = "Day",
    [3] = "ImmediateOrCancel",
}

local LOGON_REJECT_REASON = {
    [1] = "AUTH_FAILED",
    [2] = "CLOCK_SKEW",
    [3] = "REPLAYED_NONCE",
    [4] = "KEY_DISABLED",
    [5] = "ADDRESS_NOT_ALLOWED",
    [6] = "WRONG_ENVIRONMENT",
    [7] = "SESSION_LIMIT",
    [8] = "THROTTLED",
    [9] = "MALFORMED",
    [10] = "STALE_LOGON",
}

local REJECT_REASON = {
    [1] = "NOT_PERMITTED",
    [2] = "THROTTLED",
    [3] = "RISK_MAX_QTY",
    [4] = "RISK_MAX_NOTIONAL",
    [5] = "ENGINE_BUSY",
    [6] = "UNKNOWN_INSTRUMENT",
    [7] = "UNKNOWN_ORDER",
    [8] = "INVALID_FIELD",
    [9] = "ENGINE_REJECT",
    [10] = "DUPLICATE_ORDER_ID",
    [11] = "PRICE_OUT_OF_BAND",
    [12] = "RISK_MAX_OPEN_NOTIONAL",
    [13] = "ENGINE_UNAVAILABLE",
}

local CANCEL_REASON = {
    [1] = "USER",
    [2] = "MASS_CANCEL",
    [3] = "CANCEL_ON_DISCONNECT",
    [4] = "IMMEDIATE_OR_CANCEL",
    [5] = "KEY_REVOKED",
}

local TERMINATE_REASON = {
    [0] = "NONE",
    [1] = "LOGOUT",
    [2] = "BAD_MAC",
    [3] = "SEQUENCE_ERROR",
    [4] = "THROTTLE_BREACH",
    [5] = "KEY_REVOKED",
    [6] = "HEARTBEAT_TIMEOUT",
    [7] = "MALFORMED",
    [8] = "SHUTDOWN",
    [9] = "SLOW_CONSUMER",
    [10] = "KEY_CHANGED",
}

-- The name of `code` in `codes`, or the number itself.
local function code_name(codes, code)
    local name = codes[code]
    if name then
        return name
    end
    return tostring(code)
end

----------------------------------------------------------------------------
-- Header (docs/PROTOCOL.md "Framing and header").

local HEADER_SIZE = 12
local ENCODING_TYPE = 0xCAFE
local SCHEMA_ID = 0x4F47
local VERSION = 1
local FRAME_SIZE_MIN = 32 -- LogonReject
local FRAME_SIZE_MAX = 84 -- Fill

----------------------------------------------------------------------------
-- Fields. Most names mean the same in every message and share one field;
-- the four `reason` fields differ by code table, so each has its own.

local pf = {}
local function u8(abbr, name, codes) pf[abbr] = ProtoField.uint8("ogp." .. abbr, name, base.DEC, codes) end
local function u16(abbr, name, codes) pf[abbr] = ProtoField.uint16("ogp." .. abbr, name, base.DEC, codes) end
local function u32(abbr, name) pf[abbr] = ProtoField.uint32("ogp." .. abbr, name, base.DEC) end
local function u64(abbr, name) pf[abbr] = ProtoField.uint64("ogp." .. abbr, name, base.DEC) end
local function i64(abbr, name) pf[abbr] = ProtoField.int64("ogp." .. abbr, name, base.DEC) end
local function raw(abbr, name) pf[abbr] = ProtoField.bytes("ogp." .. abbr, name) end

u16("message_size", "message_size")
pf.encoding_type = ProtoField.uint16("ogp.encoding_type", "encoding_type", base.HEX)
u16("block_length", "block_length")
pf.template_id = ProtoField.uint16("ogp.template_id", "template_id", base.DEC) -- names set below
pf.schema_id = ProtoField.uint16("ogp.schema_id", "schema_id", base.HEX)
u16("version", "version")

u64("seq", "seq")
u64("key_id", "key_id")
u64("request_time_ns", "request_time_ns")
raw("client_nonce", "client_nonce")
u16("keepalive_ms", "keepalive_ms")
u8("environment", "environment", ENVIRONMENT)
pf.flags = ProtoField.uint8("ogp.flags", "flags", base.HEX)
pf.flags_cod = ProtoField.bool("ogp.flags.cancel_on_disconnect", "cancel_on_disconnect", 8, nil, 0x01)
pf.flags_other = ProtoField.uint8("ogp.flags.undefined", "undefined bits (must be 0)", base.HEX, nil, 0xFE)
raw("signature", "signature")
u64("session_id", "session_id")
u64("server_time_ns", "server_time_ns")
raw("server_nonce", "server_nonce")
pf.scopes = ProtoField.uint8("ogp.scopes", "scopes", base.HEX)
pf.scopes_trade = ProtoField.bool("ogp.scopes.trade", "TRADE", 8, nil, 0x01)
pf.scopes_cancel = ProtoField.bool("ogp.scopes.cancel", "CANCEL", 8, nil, 0x02)
pf.scopes_read = ProtoField.bool("ogp.scopes.read", "READ", 8, nil, 0x04)
u16("logon_reject.reason", "reason", LOGON_REJECT_REASON)
u16("logout.reason", "reason", TERMINATE_REASON)
u16("terminate.reason", "reason", TERMINATE_REASON)
u64("cl_ord_id", "cl_ord_id")
u64("orig_cl_ord_id", "orig_cl_ord_id")
i64("price", "price")
u32("qty", "qty")
u32("instrument_id", "instrument_id")
u8("side", "side", SIDE)
u8("mass_cancel.side", "side", MASS_CANCEL_SIDE)
u8("ord_type", "ord_type", ORD_TYPE)
u8("tif", "tif", TIF)
u64("order_id", "order_id")
u64("transact_time_ns", "transact_time_ns")
u64("retry_after_ns", "retry_after_ns")
u16("order_rejected.reason", "reason", REJECT_REASON)
u32("canceled_qty", "canceled_qty")
u16("order_canceled.reason", "reason", CANCEL_REASON)
u32("leaves_qty", "leaves_qty")
u64("exec_id", "exec_id")
i64("fill_price", "fill_price")
u32("fill_qty", "fill_qty")
u32("canceled_count", "canceled_count")
raw("pad", "pad")
raw("mac", "mac")
raw("bad_bytes", "bytes")

----------------------------------------------------------------------------
-- Templates (docs/PROTOCOL.md "Messages"): id, name, size, who sends it,
-- and each field as {offset, field, length, kind}. Kinds: "u" unsigned,
-- "i" signed, "b" bytes, "t" time (u64 ns since the Unix epoch), and the
-- bit sets "flags" and "scopes". Gaps are pad.

local CLIENT, GATEWAY, BOTH = "client → gateway", "gateway → client", "either way"

local TEMPLATES = {
    [1] = { name = "Logon", size = 80, dir = CLIENT, fields = {
        { 12, "key_id", 8, "u" }, { 20, "request_time_ns", 8, "t" }, { 28, "client_nonce", 16, "b" },
        { 44, "keepalive_ms", 2, "u" }, { 46, "environment", 1, "u" }, { 47, "flags", 1, "flags" },
        { 48, "signature", 32, "b" } } },
    [2] = { name = "LogonAck", size = 72, dir = GATEWAY, fields = {
        { 12, "session_id", 8, "u" }, { 20, "server_time_ns", 8, "t" }, { 28, "server_nonce", 16, "b" },
        { 44, "keepalive_ms", 2, "u" }, { 46, "scopes", 1, "scopes" }, { 47, "environment", 1, "u" },
        { 48, "seq", 8, "u" }, { 56, "mac", 16, "b" } } },
    [3] = { name = "LogonReject", size = 32, dir = GATEWAY, fields = {
        { 12, "logon_reject.reason", 2, "u" }, { 20, "server_time_ns", 8, "t" } } },
    [4] = { name = "Heartbeat", size = 36, dir = BOTH, fields = {
        { 12, "seq", 8, "u" }, { 20, "mac", 16, "b" } } },
    [5] = { name = "Logout", size = 44, dir = CLIENT, fields = {
        { 12, "seq", 8, "u" }, { 20, "logout.reason", 2, "u" }, { 28, "mac", 16, "b" } } },
    [6] = { name = "Terminate", size = 44, dir = GATEWAY, fields = {
        { 12, "seq", 8, "u" }, { 20, "terminate.reason", 2, "u" }, { 28, "mac", 16, "b" } } },
    [10] = { name = "NewOrder", size = 64, dir = CLIENT, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "price", 8, "i" }, { 36, "qty", 4, "u" },
        { 40, "instrument_id", 4, "u" }, { 44, "side", 1, "u" }, { 45, "ord_type", 1, "u" },
        { 46, "tif", 1, "u" }, { 48, "mac", 16, "b" } } },
    [11] = { name = "CancelOrder", size = 60, dir = CLIENT, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "orig_cl_ord_id", 8, "u" },
        { 36, "instrument_id", 4, "u" }, { 44, "mac", 16, "b" } } },
    [12] = { name = "ReplaceOrder", size = 68, dir = CLIENT, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "orig_cl_ord_id", 8, "u" },
        { 36, "price", 8, "i" }, { 44, "qty", 4, "u" }, { 48, "instrument_id", 4, "u" },
        { 52, "mac", 16, "b" } } },
    [13] = { name = "MassCancel", size = 52, dir = CLIENT, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "instrument_id", 4, "u" },
        { 32, "mass_cancel.side", 1, "u" }, { 36, "mac", 16, "b" } } },
    [20] = { name = "OrderAccepted", size = 60, dir = GATEWAY, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "order_id", 8, "u" },
        { 36, "transact_time_ns", 8, "t" }, { 44, "mac", 16, "b" } } },
    [21] = { name = "OrderRejected", size = 64, dir = GATEWAY, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "transact_time_ns", 8, "t" },
        { 36, "retry_after_ns", 8, "u" }, { 44, "order_rejected.reason", 2, "u" }, { 48, "mac", 16, "b" } } },
    [22] = { name = "OrderCanceled", size = 68, dir = GATEWAY, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "order_id", 8, "u" },
        { 36, "transact_time_ns", 8, "t" }, { 44, "canceled_qty", 4, "u" },
        { 48, "order_canceled.reason", 2, "u" }, { 52, "mac", 16, "b" } } },
    [23] = { name = "OrderReplaced", size = 68, dir = GATEWAY, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "order_id", 8, "u" },
        { 36, "transact_time_ns", 8, "t" }, { 44, "leaves_qty", 4, "u" }, { 52, "mac", 16, "b" } } },
    [24] = { name = "Fill", size = 84, dir = GATEWAY, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "order_id", 8, "u" },
        { 36, "exec_id", 8, "u" }, { 44, "transact_time_ns", 8, "t" }, { 52, "fill_price", 8, "i" },
        { 60, "fill_qty", 4, "u" }, { 64, "leaves_qty", 4, "u" }, { 68, "mac", 16, "b" } } },
    [25] = { name = "MassCancelAck", size = 60, dir = GATEWAY, fields = {
        { 12, "seq", 8, "u" }, { 20, "cl_ord_id", 8, "u" }, { 28, "transact_time_ns", 8, "t" },
        { 36, "canceled_count", 4, "u" }, { 44, "mac", 16, "b" } } },
}

-- template_id shows the template's name.
local TEMPLATE_NAMES = {}
for id, t in pairs(TEMPLATES) do
    TEMPLATE_NAMES[id] = t.name
end
pf.template_id = ProtoField.uint16("ogp.template_id", "template_id", base.DEC, TEMPLATE_NAMES)

local field_list = {}
for _, f in pairs(pf) do
    field_list[#field_list + 1] = f
end
ogp.fields = field_list

----------------------------------------------------------------------------
-- Expert infos.

local ef = {
    bad_length = ProtoExpert.new("ogp.bad_length", "bad length", expert.group.MALFORMED, expert.severity.ERROR),
    bad_header = ProtoExpert.new("ogp.bad_header", "bad header", expert.group.MALFORMED, expert.severity.ERROR),
    unknown_template = ProtoExpert.new("ogp.unknown_template", "unknown template",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_flags = ProtoExpert.new("ogp.bad_flags", "undefined logon flag bits set",
        expert.group.PROTOCOL, expert.severity.WARN),
}
ogp.experts = { ef.bad_length, ef.bad_header, ef.unknown_template, ef.bad_flags }

----------------------------------------------------------------------------
-- Dissection of one frame.

-- "2025-11-24T16:00:00.123456789Z" for a u64 of ns since the epoch.
local function utc(ns)
    local secs = (ns / 1000000000):tonumber()
    local frac = (ns % 1000000000):tonumber()
    return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%09dZ", frac)
end

-- A field's value for the summary line.
local function value_of(tvb, off, len, kind)
    local r = tvb(off, len)
    if kind == "b" then
        return nil
    elseif kind == "i" then
        return r:le_int64()
    elseif len == 8 then
        return r:le_uint64()
    else
        return r:le_uint()
    end
end

-- The one-line summary of a frame: "NewOrder cl_ord_id=1 Buy 10 @ 100".
local function summary(name, v)
    local function g(k) return v[k] ~= nil and tostring(v[k]) or "?" end
    if name == "Logon" then
        return string.format("Logon key_id=%s keepalive_ms=%s", g("key_id"), g("keepalive_ms"))
    elseif name == "LogonAck" then
        return string.format("LogonAck session_id=%s", g("session_id"))
    elseif name == "LogonReject" then
        return "LogonReject " .. code_name(LOGON_REJECT_REASON, v["logon_reject.reason"])
    elseif name == "Heartbeat" then
        return "Heartbeat seq=" .. g("seq")
    elseif name == "Logout" then
        return "Logout seq=" .. g("seq")
    elseif name == "Terminate" then
        return "Terminate " .. code_name(TERMINATE_REASON, v["terminate.reason"])
    elseif name == "NewOrder" then
        return string.format("NewOrder cl_ord_id=%s %s %s @ %s", g("cl_ord_id"),
            code_name(SIDE, v.side), g("qty"), g("price"))
    elseif name == "CancelOrder" then
        return string.format("CancelOrder cl_ord_id=%s orig=%s", g("cl_ord_id"), g("orig_cl_ord_id"))
    elseif name == "ReplaceOrder" then
        return string.format("ReplaceOrder cl_ord_id=%s orig=%s %s @ %s", g("cl_ord_id"),
            g("orig_cl_ord_id"), g("qty"), g("price"))
    elseif name == "MassCancel" then
        return string.format("MassCancel cl_ord_id=%s instrument_id=%s", g("cl_ord_id"), g("instrument_id"))
    elseif name == "OrderRejected" then
        return string.format("OrderRejected cl_ord_id=%s %s", g("cl_ord_id"),
            code_name(REJECT_REASON, v["order_rejected.reason"]))
    elseif name == "OrderCanceled" then
        return string.format("OrderCanceled cl_ord_id=%s %s", g("cl_ord_id"),
            code_name(CANCEL_REASON, v["order_canceled.reason"]))
    elseif name == "Fill" then
        return string.format("Fill cl_ord_id=%s %s @ %s", g("cl_ord_id"), g("fill_qty"), g("fill_price"))
    elseif name == "MassCancelAck" then
        return string.format("MassCancelAck cl_ord_id=%s canceled_count=%s", g("cl_ord_id"), g("canceled_count"))
    end
    return name .. " cl_ord_id=" .. g("cl_ord_id")
end

local function add_info(pinfo, text)
    local info = tostring(pinfo.cols.info)
    if info:sub(1, 4) == "OGP " then
        pinfo.cols.info:append(", " .. text)
    else
        pinfo.cols.info:set("OGP " .. text)
    end
end

-- Dissects one whole frame (as dissect_tcp_pdus cut it out).
local function dissect_frame(tvb, pinfo, root)
    pinfo.cols.protocol = "OGP"
    local len = tvb:len()
    local tree = root:add(ogp, tvb(0, len))
    if len < HEADER_SIZE then
        tree:set_text("OGP v1, bad frame")
        tree:add(pf.bad_bytes, tvb(0, len))
        tree:add_proto_expert_info(ef.bad_length, string.format(
            "bad length: %d bytes, shorter than the %d-byte header", len, HEADER_SIZE))
        add_info(pinfo, "bad frame (bad length)")
        return len
    end
    local size = tvb(0, 2):le_uint()
    local encoding = tvb(2, 2):le_uint()
    local block_length = tvb(4, 2):le_uint()
    local template_id = tvb(6, 2):le_uint()
    local schema = tvb(8, 2):le_uint()
    local version = tvb(10, 2):le_uint()
    local t = TEMPLATES[template_id]
    local name = t and t.name or ("template " .. template_id)

    tree:set_text(string.format("OGP v1, %s (%s), %d bytes", name, t and t.dir or "?", len))
    local header = tree:add(ogp, tvb(0, HEADER_SIZE), "Header")
    header:set_text("Header (SOFH + SBE message header)")
    local size_item = header:add_le(pf.message_size, tvb(0, 2))
    local enc_item = header:add_le(pf.encoding_type, tvb(2, 2))
    local bl_item = header:add_le(pf.block_length, tvb(4, 2))
    local tid_item = header:add_le(pf.template_id, tvb(6, 2))
    local schema_item = header:add_le(pf.schema_id, tvb(8, 2))
    local version_item = header:add_le(pf.version, tvb(10, 2))

    -- The length, most basic fault first: no frame has it; not this
    -- template's; not what the stream holds; block_length disagrees.
    local bad = nil
    if size < FRAME_SIZE_MIN or size > FRAME_SIZE_MAX then
        bad = string.format("bad length: message_size %d outside %d..=%d", size, FRAME_SIZE_MIN, FRAME_SIZE_MAX)
    elseif t and size ~= t.size then
        bad = string.format("bad length: message_size %d, %s is %d bytes", size, t.name, t.size)
    elseif size ~= len then
        bad = string.format("bad length: message_size %d, but %d bytes follow in the stream", size, len)
    end
    if bad then
        size_item:add_proto_expert_info(ef.bad_length, bad)
    elseif block_length ~= size - HEADER_SIZE then
        bad = string.format("bad length: block_length %d, message_size - 12 is %d", block_length, size - HEADER_SIZE)
        bl_item:add_proto_expert_info(ef.bad_length, bad)
    end
    if encoding ~= ENCODING_TYPE then
        enc_item:add_proto_expert_info(ef.bad_header, string.format("bad header: encoding_type 0x%04X, not 0xCAFE", encoding))
    end
    if schema ~= SCHEMA_ID then
        schema_item:add_proto_expert_info(ef.bad_header, string.format("bad header: schema_id 0x%04X, not 0x4F47", schema))
    end
    if version ~= VERSION then
        version_item:add_proto_expert_info(ef.bad_header, string.format("bad header: version %d, not 1", version))
    end
    if not t then
        tid_item:add_proto_expert_info(ef.unknown_template, "unknown template " .. template_id)
        if len > HEADER_SIZE then
            tree:add(pf.bad_bytes, tvb(HEADER_SIZE, len - HEADER_SIZE))
        end
        add_info(pinfo, name .. " (unknown template)")
        return len
    end

    -- The fields, as far as the frame's bytes go; gaps are pad.
    local values = {}
    local at = HEADER_SIZE
    for _, f in ipairs(t.fields) do
        local off, key, flen, kind = f[1], f[2], f[3], f[4]
        if off + flen > len then
            break
        end
        if off > at then
            tree:add(pf.pad, tvb(at, off - at))
        end
        local item = tree:add_le(pf[key], tvb(off, flen))
        local v = value_of(tvb, off, flen, kind)
        values[key] = v
        if kind == "t" then
            item:append_text(" (" .. utc(v) .. ")")
        elseif kind == "flags" then
            item:add(pf.flags_cod, tvb(off, 1))
            local other = item:add(pf.flags_other, tvb(off, 1))
            if v >= 2 then -- a bit other than bit 0
                other:add_proto_expert_info(ef.bad_flags)
            end
        elseif kind == "scopes" then
            item:add(pf.scopes_trade, tvb(off, 1))
            item:add(pf.scopes_cancel, tvb(off, 1))
            item:add(pf.scopes_read, tvb(off, 1))
        end
        at = off + flen
    end
    if at < len then
        tree:add(pf.pad, tvb(at, len - at))
    end

    local line = summary(t.name, values)
    tree:append_text(": " .. line)
    if bad then
        line = line .. " (" .. bad .. ")"
    end
    add_info(pinfo, line)
    return len
end

-- The length of the frame at `offset`: message_size, or, when it is not a
-- length any frame can have, the rest of the segment (shown as one bad
-- frame: the stream cannot be followed past it).
local function frame_length(tvb, pinfo, offset)
    local size = tvb(offset, 2):le_uint()
    if size < HEADER_SIZE or size > FRAME_SIZE_MAX then
        return tvb:len() - offset
    end
    return size
end

function ogp.dissector(tvb, pinfo, tree)
    dissect_tcp_pdus(tvb, tree, 2, frame_length, dissect_frame, true)
    return tvb:len()
end

-- An OGP header at the start of the segment: encoding, schema, version.
local function heuristic(tvb, pinfo, tree)
    if tvb:len() < HEADER_SIZE then
        return false
    end
    if tvb(2, 2):le_uint() ~= ENCODING_TYPE or tvb(8, 2):le_uint() ~= SCHEMA_ID
        or tvb(10, 2):le_uint() ~= VERSION then
        return false
    end
    -- The rest of this stream is OGP too (segments that continue a frame
    -- do not start with a header).
    pinfo.conversation = ogp
    ogp.dissector(tvb, pinfo, tree)
    return true
end

ogp:register_heuristic("tcp", heuristic)

----------------------------------------------------------------------------
-- The port preference.

ogp.prefs.tcp_port = Pref.uint("OGP TCP port", 9000,
    "Streams on this TCP port are OGP (0: none; any stream that starts with an OGP header is found anyway)")

local registered_port = 0
local function register_port()
    local tcp = DissectorTable.get("tcp.port")
    if registered_port ~= 0 then
        tcp:remove(registered_port, ogp)
    end
    registered_port = ogp.prefs.tcp_port
    if registered_port ~= 0 then
        tcp:add(registered_port, ogp)
    end
end

function ogp.prefs_changed()
    register_port()
end

register_port()
