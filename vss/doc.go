// Package vss holds the enumerations and flag sets of the Volume Shadow Copy
// Service (vss-reference §1.3, vss-reference §1.4, vss-reference §1.6, vss-reference §3.3) with their exact numeric values and
// their C names, so that every layer (documents, coordinator, wire, CLI)
// speaks one vocabulary. Each type prints as its spec name and parses from
// that name or from its number, which is what `lvss call` accepts (D12).
package vss
