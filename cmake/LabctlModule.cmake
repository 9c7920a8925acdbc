# labctl_module(<name> SOURCES ... [DEPS ...]) — one static library per module, aliased labctl::<name>,
# with the rooted public include directory and the project's warnings.
function(labctl_module name)
    cmake_parse_arguments(M "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
    add_library(labctl_${name} STATIC ${M_SOURCES})
    add_library(labctl::${name} ALIAS labctl_${name})
    target_include_directories(labctl_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include
        PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(labctl_${name} PUBLIC ${M_DEPS} PRIVATE labctl_warnings ${M_PRIVATE_DEPS})
endfunction()
