package pdk

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi/check"
)

type embeddedBase struct {
	ID   int    `json:"id"`
	Note string `json:"note,omitempty"`
}

type recursive struct {
	Name     string       `json:"name"`
	Children []*recursive `json:"children"`
}

type state string

func TestObjectSchema(t *testing.T) {
	type address struct {
		City string `json:"city"`
	}
	tests := []struct {
		name string
		typ  reflect.Type
		want string
	}{
		{
			name: "scalars are required unless omitempty, omitzero or a pointer",
			typ: reflect.TypeFor[struct {
				S   string   `json:"s"`
				B   bool     `json:"b,omitempty"`
				I   int64    `json:"i,omitzero"`
				F   *float64 `json:"f"`
				U   uint8    `json:"u"`
				Raw string
			}](),
			want: `{"type":"object","properties":{"s":{"type":"string"},"b":{"type":"boolean"},"i":{"type":"integer"},"f":{"type":["number","null"]},"u":{"type":"integer","minimum":0},"Raw":{"type":"string"}},"required":["s","u","Raw"],"additionalProperties":false}`,
		},
		{
			name: "descriptions come from the jsonschema tag as in the MCP Go SDK",
			typ: reflect.TypeFor[struct {
				Owner string `json:"owner" jsonschema:"The account owning the repository"`
			}](),
			want: `{"type":"object","properties":{"owner":{"type":"string","description":"The account owning the repository"}},"required":["owner"],"additionalProperties":false}`,
		},
		{
			name: "enum, default, bounds, pattern and format tags",
			typ: reflect.TypeFor[struct {
				State state   `json:"state,omitempty" enum:"open,closed,all" default:"open"`
				Limit int     `json:"limit,omitempty" default:"30" minimum:"1" maximum:"1000"`
				Name  string  `json:"name" pattern:"^[a-z]+$" minLength:"1" maxLength:"39"`
				URL   string  `json:"url" format:"uri"`
				Prio  *int    `json:"prio,omitempty" enum:"1,2,3"`
				Ratio float64 `json:"ratio" enum:"0.5,1"`
			}](),
			want: `{"type":"object","properties":{` +
				`"state":{"type":"string","enum":["open","closed","all"],"default":"open"},` +
				`"limit":{"type":"integer","default":30,"minimum":1,"maximum":1000},` +
				`"name":{"type":"string","minLength":1,"maxLength":39,"pattern":"^[a-z]+$"},` +
				`"url":{"type":"string","format":"uri"},` +
				`"prio":{"type":["integer","null"],"enum":[1,2,3,null]},` +
				`"ratio":{"type":"number","enum":[0.5,1]}},` +
				`"required":["name","url","ratio"],"additionalProperties":false}`,
		},
		{
			name: "value tags on a slice apply to its items",
			typ: reflect.TypeFor[struct {
				Labels []string `json:"labels,omitempty" jsonschema:"Label names" pattern:"^\\S+$"`
			}](),
			want: `{"type":"object","properties":{"labels":{"type":["array","null"],"description":"Label names","items":{"type":"string","pattern":"^\\S+$"}}},"additionalProperties":false}`,
		},
		{
			name: "time, raw JSON, any, bytes, maps, arrays and nested structs",
			typ: reflect.TypeFor[struct {
				When    time.Time         `json:"when"`
				Later   *time.Time        `json:"later,omitempty"`
				Raw     json.RawMessage   `json:"raw,omitempty"`
				Any     any               `json:"any"`
				Data    []byte            `json:"data,omitempty"`
				Headers map[string]string `json:"headers"`
				Pair    [2]int            `json:"pair"`
				Addr    address           `json:"addr"`
				Home    *address          `json:"home,omitempty"`
			}](),
			want: `{"type":"object","properties":{` +
				`"when":{"type":"string","format":"date-time"},` +
				`"later":{"type":["string","null"],"format":"date-time"},` +
				`"raw":{},"any":{},` +
				`"data":{"type":["string","null"],"contentEncoding":"base64"},` +
				`"headers":{"type":["object","null"],"additionalProperties":{"type":"string"}},` +
				`"pair":{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":2},` +
				`"addr":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false},` +
				`"home":{"type":["object","null"],"properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}},` +
				`"required":["when","any","headers","pair","addr"],"additionalProperties":false}`,
		},
		{
			name: "embedded structs are flattened, the outer field wins, - and unexported are skipped",
			typ: reflect.TypeFor[struct {
				embeddedBase
				Note    string `json:"note"`
				Skipped string `json:"-"`
				hidden  string
				Dash    string `json:"-,"`
			}](),
			want: `{"type":"object","properties":{"id":{"type":"integer"},"note":{"type":"string"},"-":{"type":"string"}},"required":["id","note","-"],"additionalProperties":false}`,
		},
		{
			name: "the string option encodes numbers as strings",
			typ: reflect.TypeFor[struct {
				N int64 `json:"n,string"`
			}](),
			want: `{"type":"object","properties":{"n":{"type":"string"}},"required":["n"],"additionalProperties":false}`,
		},
		{
			name: "text marshalers are strings",
			typ: reflect.TypeFor[struct {
				IP netip.Addr `json:"ip"`
			}](),
			want: `{"type":"object","properties":{"ip":{"type":"string"}},"required":["ip"],"additionalProperties":false}`,
		},
		{
			name: "a pointer to a struct at the top is the struct, never null",
			typ:  reflect.TypeFor[*address](),
			want: `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`,
		},
		{
			name: "a map at the top is an open object",
			typ:  reflect.TypeFor[map[string]any](),
			want: `{"type":"object","additionalProperties":{}}`,
		},
		{
			name: "an empty struct accepts only the empty object",
			typ:  reflect.TypeFor[struct{}](),
			want: `{"type":"object","additionalProperties":false}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := objectSchema(tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("schema\n got %s\nwant %s", got, tt.want)
			}
			if _, err := check.CompileSchema(got); err != nil {
				t.Errorf("the schema does not compile: %v", err)
			}
		})
	}
}

func TestObjectSchemaErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  reflect.Type
	}{
		{"a string is not an object", reflect.TypeFor[string]()},
		{"a slice is not an object", reflect.TypeFor[[]int]()},
		{"time.Time is not an object", reflect.TypeFor[time.Time]()},
		{"a recursive type needs an explicit schema", reflect.TypeFor[recursive]()},
		{"channels have no JSON", reflect.TypeFor[struct {
			C chan int `json:"c"`
		}]()},
		{"functions have no JSON", reflect.TypeFor[struct{ F func() }]()},
		{"map keys must be strings or integers", reflect.TypeFor[struct{ M map[[2]int]string }]()},
		{"enum values must parse as the field type", reflect.TypeFor[struct {
			N int `enum:"a,b"`
		}]()},
		{"a minimum must be a number", reflect.TypeFor[struct {
			N int `minimum:"one"`
		}]()},
		{"a non-string default must be JSON", reflect.TypeFor[struct {
			N int `default:"thirty"`
		}]()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := objectSchema(tt.typ)
			if err == nil {
				t.Fatalf("got schema %s, want an error", s)
			}
			if !errors.Is(err, ErrSchema) {
				t.Errorf("error %v does not wrap ErrSchema", err)
			}
		})
	}
}

func TestSchemaForIsDeterministic(t *testing.T) {
	type in struct {
		B map[string]int `json:"b"`
		A []string       `json:"a"`
		C struct {
			Z string `json:"z"`
			Y string `json:"y"`
		} `json:"c"`
	}
	first, err := SchemaFor[in]()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := SchemaFor[in]()
		if string(again) != string(first) {
			t.Fatalf("SchemaFor changed:\n%s\n%s", first, again)
		}
	}
}

func TestDerivedSchemaValidatesWhatJSONMarshals(t *testing.T) {
	type item struct {
		Name string `json:"name"`
	}
	type out struct {
		Items   []item            `json:"items"`
		Tags    map[string]string `json:"tags"`
		Next    *string           `json:"next"`
		When    time.Time         `json:"when"`
		Payload json.RawMessage   `json:"payload"`
	}
	raw, err := SchemaFor[out]()
	if err != nil {
		t.Fatal(err)
	}
	s, err := check.CompileSchema(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []out{
		{}, // nil slice and map encode as null, which the schema accepts
		{Items: []item{{Name: "a"}}, Tags: map[string]string{"k": "v"}, When: time.Now(), Payload: json.RawMessage(`[1]`)},
	} {
		doc, _ := json.Marshal(v)
		if errs := s.Validate(doc); errs != nil {
			t.Errorf("%s does not validate: %v", doc, errs)
		}
	}
}
