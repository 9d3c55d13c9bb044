// Package vss holds the enumerations and flag sets of the Volume Shadow Copy
// Service (spec §1.3, §1.4, §1.6, §3.3) with their exact numeric values and
// their C names, so that every layer (documents, coordinator, wire, CLI)
// speaks one vocabulary. Each type prints as its spec name and parses from
// that name or from its number, which is what `lvss call` accepts (§12 D12).
package vss
