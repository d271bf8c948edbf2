package pdk_test

import (
	"fmt"
	"strconv"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/pdk"
)

type GetTodoInput struct {
	ID int `json:"id" jsonschema:"The todo's id" minimum:"1"`
}

type Todo struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

type ListTodosInput struct {
	Limit int `json:"limit,omitempty" minimum:"1" maximum:"500" default:"50"`
}

type TodoList struct {
	Todos []Todo `json:"todos"`
}

func getTodo(ctx *pdk.Context, in GetTodoInput) (Todo, error) {
	var t Todo
	// GetJSON maps a non-2xx answer to a guest error (404 becomes not_found, ...).
	_, err := ctx.HTTP().GetJSON(ctx.Param("base_url")+"/todos/"+strconv.Itoa(in.ID), &t)
	return t, err
}

func listTodos(ctx *pdk.Context, in ListTodosInput) (TodoList, error) {
	if in.Limit == 0 {
		in.Limit = 50 // defaults are documentation: apply them yourself
	}
	todos, err := pdk.Paginate(in.Limit, func(next string) ([]Todo, string, error) {
		if next == "" {
			next = ctx.Param("base_url") + "/todos?per_page=100"
		}
		var page []Todo
		resp, err := ctx.HTTP().GetJSON(next, &page)
		if err != nil {
			return nil, "", err
		}
		return page, pdk.NextLink(resp), nil // follow Link: <...>; rel="next"
	})
	return TodoList{Todos: todos}, err
}

// A complete connector: in a plugin, the body of this example is the main package's init
// function.
func Example() {
	pdk.Connector(pdk.Info{
		Name:    "todo",
		Version: "1.0.0",
		Title:   "Todo",
		Auth: abi.Auth{
			Types:  []string{abi.AuthAPIKey},
			APIKey: &abi.APIKeyAuth{In: "header", Name: "Authorization", Prefix: "Bearer "},
		},
		ConnectionParams: `{"type":"object","properties":{"base_url":{"type":"string","format":"uri"}},"required":["base_url"]}`,
		Hosts:            []string{"{base_url}"},
	})
	pdk.Action("get_todo", getTodo, pdk.Title("Get a todo"), pdk.ReadOnly())
	pdk.Action("list_todos", listTodos, pdk.ReadOnly())

	m, err := pdk.Describe()
	if err != nil {
		panic(err)
	}
	if err := check.Manifest(m); err != nil {
		panic(err)
	}
	fmt.Println(m.Name, m.Actions[0].Name, m.Actions[1].Name)
	// Output: todo get_todo list_todos
}
